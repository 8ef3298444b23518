//! `detect`, `evaluate-detector` and `train-detector`: the disc detector on the command line.

use super::common::{load_detector, threads_or_all};
use clap::Args;
use endplate::disc::detection::DetectedDisc;
use endplate::eval::detection::{match_slice, DetectionReport, SliceTruth};
use endplate::image::decode::{decode_file, DecodeOptions};
use endplate::manifest::{self, Row};
use endplate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct DetectArgs {
    /// Slice image: DICOM, PNG (8/16-bit) or JPEG
    #[arg(long)]
    pub image: PathBuf,
    /// Frame of a multi-frame DICOM (0-based; default: the middle frame)
    #[arg(long)]
    pub frame: Option<u32>,
    /// Detector file (ONNX with its card, kind "detector"); default: the bundled detector
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Machine-readable output (SPEC.md's `detect --json`)
    #[arg(long)]
    pub json: bool,
    /// Also write the lumbar discs found as manifest rows (empty label) to this CSV
    #[arg(long)]
    pub manifest_out: Option<PathBuf>,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run_detect(a: DetectArgs) -> Result<()> {
    endplate::model::inference::set_threads(threads_or_all(a.threads));
    let detector = load_detector(a.detector.as_deref())?;
    let slice = decode_file(&a.image, DecodeOptions { frame: a.frame })?;
    let start = Instant::now();
    let discs = detector.detect(&slice)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let image = a.image.display().to_string();
    if a.json {
        let out = serde_json::json!({
            "image": image,
            "model": detector.card().summary(),
            "discs": discs,
            "milliseconds": ms,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "{:<7} {:>5}  corners (x, y): upper endplate, lower endplate",
            "level", "score"
        );
        for d in &discs {
            let c: Vec<String> = d
                .corners
                .iter()
                .map(|p| format!("({:.1}, {:.1})", p.x, p.y))
                .collect();
            println!(
                "{:<7} {:>5.2}  {}",
                d.level.as_deref().unwrap_or("?"),
                d.score,
                c.join(" ")
            );
        }
    }
    eprintln!("{}", summary_line(&discs, &image, ms));
    if let Some(out) = &a.manifest_out {
        let rows = lumbar_rows(&discs, &image, "");
        endplate::files::write_atomic(out, manifest::write(&rows, &[], &[]).as_bytes())?;
        eprintln!("wrote {} rows to {}", rows.len(), out.display());
    }
    Ok(())
}

/// What a user needs to hear about a detection, including when nothing usable was found.
pub fn summary_line(discs: &[DetectedDisc], image: &str, ms: f64) -> String {
    let lumbar = discs.iter().filter(|d| d.lumbar_level().is_some()).count();
    if discs.is_empty() {
        format!("{image}: no discs found ({ms:.0} ms). Is this a sagittal slice of the lumbar spine? Place corners by hand (--corners) if it is.")
    } else if discs.iter().all(|d| d.level.is_none()) {
        format!("{image}: {} discs found but no sacrum, so their levels cannot be named ({ms:.0} ms); give --corners and --level by hand", discs.len())
    } else {
        format!(
            "{image}: {} discs found, {lumbar} of them lumbar (L1L2-L5S1), in {ms:.0} ms",
            discs.len()
        )
    }
}

/// The lumbar discs as manifest rows (thoracic ones are not classified).
pub fn lumbar_rows(discs: &[DetectedDisc], image: &str, subject: &str) -> Vec<Row> {
    discs
        .iter()
        .filter_map(|d| {
            Some(Row {
                image: image.to_string(),
                subject: subject.to_string(),
                level: Some(d.lumbar_level()?),
                label: None,
                corners: d.corners,
            })
        })
        .collect()
}

#[derive(Args)]
pub struct EvaluateDetectorArgs {
    /// Manifest CSV with levels and corners of the true discs (several allowed)
    #[arg(long, required = true)]
    pub manifest: Vec<PathBuf>,
    /// Detector file; default: the bundled detector
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Machine-readable output (the report with every disc)
    #[arg(long)]
    pub json: bool,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Each image of the manifests with its true discs, decoded once.
pub fn truth_slices(manifests: &[PathBuf]) -> Result<Vec<(SliceTruth, endplate::Slice)>> {
    let mut out = Vec::new();
    for m in manifests {
        let text = std::fs::read_to_string(m).map_err(|e| Error::io(m, e))?;
        let rows = manifest::parse(&m.display().to_string(), &text)?;
        let spacings = manifest::spacing_column(&m.display().to_string(), &text)?;
        let base = m.parent().unwrap_or(Path::new("."));
        let mut images: Vec<String> = rows.iter().map(|r| r.image.clone()).collect();
        images.dedup();
        for image in images {
            let discs = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.image == image)
                .map(|(k, r)| {
                    r.level.map(|l| (l, r.corners)).ok_or_else(|| {
                        Error::Invalid(format!("{} row {}: the level is empty; evaluating a detector needs each disc's level", m.display(), k + 2))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let spacing = rows
                .iter()
                .zip(&spacings)
                .find(|(r, _)| r.image == image)
                .and_then(|(_, s)| *s);
            let slice = decode_file(&base.join(&image), DecodeOptions::default())?;
            let spacing_mm = spacing.or(slice.spacing_mm.map(|s| 0.5 * (s.0 + s.1)));
            out.push((
                SliceTruth {
                    image,
                    spacing_mm,
                    discs,
                },
                slice,
            ));
        }
    }
    Ok(out)
}

pub fn evaluate(
    detector: &endplate::model::detector::Detector,
    slices: &[(SliceTruth, endplate::Slice)],
) -> Result<(DetectionReport, Vec<f64>)> {
    let (mut outcomes, mut false_discs, mut times) = (Vec::new(), 0, Vec::new());
    for (truth, slice) in slices {
        let start = Instant::now();
        let found = detector.detect(slice)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        let (o, f) = match_slice(truth, &found);
        outcomes.extend(o);
        false_discs += f;
    }
    Ok((
        DetectionReport::new(outcomes, false_discs, slices.len()),
        times,
    ))
}

pub fn print_report(r: &DetectionReport) {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    println!("{} slices, {} true lumbar discs", r.slices, r.overall.discs);
    println!(
        "{:<6} {:>5} {:>11} {:>11} {:>6}  {:>10} {:>8}  {:>10} {:>8}",
        "level",
        "discs",
        "right level",
        "wrong level",
        "missed",
        "median px",
        "p90 px",
        "median mm",
        "p90 mm"
    );
    for l in r.levels.iter().chain(std::iter::once(&r.overall)) {
        println!(
            "{:<6} {:>5} {:>5} ({:>3.0}%) {:>11} {:>6}  {:>10} {:>8}  {:>10} {:>8}",
            l.level,
            l.discs,
            l.right_level,
            100.0 * l.right_level_rate,
            l.wrong_level,
            l.missed,
            opt(l.corner_median_px),
            opt(l.corner_p90_px),
            opt(l.corner_median_mm),
            opt(l.corner_p90_mm)
        );
    }
    println!(
        "false discs: {} ({:.1} % of true discs)",
        r.false_discs,
        100.0 * r.false_rate
    );
}

pub fn run_evaluate_detector(a: EvaluateDetectorArgs) -> Result<()> {
    endplate::model::inference::set_threads(threads_or_all(a.threads));
    let detector = load_detector(a.detector.as_deref())?;
    let slices = truth_slices(&a.manifest)?;
    let (report, times) = evaluate(&detector, &slices)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print_report(&report);
    }
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    eprintln!(
        "{} slices, {:.1} ms per slice (two views)",
        times.len(),
        mean
    );
    Ok(())
}

#[cfg(feature = "train")]
pub use training::{run_train_detector, TrainDetectorArgs};

#[cfg(feature = "train")]
mod training {
    use super::*;
    use endplate::model::card::Training;
    use endplate::model::detector::{write_detector, Detector, DetectorCard, DetectorInput};
    use endplate::model::detector_net::DetectorArch;
    use endplate::model::file::BatchNorm;
    use endplate::model::resnet::Weights;
    use endplate::train::detector::{train_detector, DetSample, DetectorConfig, DetectorProgress};
    use endplate::train::detector_data::{manifest_samples, phantom_samples, phantom_slices};
    use sha2::{Digest, Sha256};

    #[derive(Args)]
    pub struct TrainDetectorArgs {
        /// Where to write the detector (ONNX with its card)
        #[arg(long)]
        pub out: PathBuf,
        /// Real slices with levels and corners to learn from (manifest CSV; several allowed)
        #[arg(long)]
        pub manifest: Vec<PathBuf>,
        /// Held-out slices with levels and corners, measured after every epoch to keep the best
        #[arg(long)]
        pub validate: Vec<PathBuf>,
        /// Phantom subjects drawn for training (0: none)
        #[arg(long, default_value_t = 300)]
        pub phantoms: usize,
        /// Phantom subjects drawn for validation, from another seed
        #[arg(long, default_value_t = 20)]
        pub validate_phantoms: usize,
        /// Seed of the training phantoms (validation uses this + 1000)
        #[arg(long, default_value_t = 101)]
        pub phantom_seed: u64,
        #[arg(long, default_value_t = 30)]
        pub epochs: usize,
        /// Random views drawn per epoch
        #[arg(long, default_value_t = 800)]
        pub views: usize,
        #[arg(long, default_value_t = 16)]
        pub batch: usize,
        #[arg(long, default_value_t = 2e-3)]
        pub lr: f64,
        /// Share of each batch drawn from the real slices
        #[arg(long, default_value_t = 0.5)]
        pub real_share: f64,
        #[arg(long, default_value_t = 1)]
        pub seed: u64,
        /// Start from this detector's weights instead of random ones
        #[arg(long)]
        pub init: Option<PathBuf>,
        /// Checkpoint folder (default: OUT.checkpoints)
        #[arg(long)]
        pub checkpoints: Option<PathBuf>,
        /// Continue the run in --checkpoints where it stopped
        #[arg(long)]
        pub resume: bool,
        /// What the data are, for the card
        #[arg(long, default_value = "")]
        pub describe: String,
        /// Threads (default: all cores)
        #[arg(long)]
        pub threads: Option<usize>,
    }

    struct Bars {
        bar: Option<indicatif::ProgressBar>,
        validation: Vec<(SliceTruth, endplate::Slice)>,
        real_validation: usize,
        input: DetectorInput,
        last: Option<(DetectionReport, DetectionReport)>,
    }

    impl DetectorProgress for Bars {
        fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64) {
            let bar = self.bar.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new(total as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "epoch {prefix} [{bar:30}] {pos}/{len} views {msg} ({eta} left)",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                b
            });
            bar.set_prefix(format!("{}", epoch + 1));
            bar.set_position(done as u64);
            bar.set_message(format!("loss {loss:.3}"));
        }

        fn epoch(
            &mut self,
            epoch: usize,
            loss: f64,
            seconds: f64,
            weights: &Weights,
        ) -> Option<f64> {
            if let Some(b) = self.bar.take() {
                b.finish_and_clear();
            }
            let mut card = DetectorCard::new("validation", Training::default());
            card.input = self.input;
            let bytes =
                write_detector(&DetectorArch::default(), weights, &card, BatchNorm::Fold).ok()?;
            let detector = Detector::from_bytes("validation", &bytes).ok()?;
            let (real, phantom) = self.validation.split_at(self.real_validation);
            let r = evaluate(&detector, real).ok()?.0;
            let p = evaluate(&detector, phantom).ok()?.0;
            let show = |name: &str, r: &DetectionReport| {
                if r.slices == 0 {
                    return String::new();
                }
                format!(
                    " | {name}: right level {:.1} %, false {}, corner median {:.2} px",
                    100.0 * r.overall.right_level_rate,
                    r.false_discs,
                    r.overall.corner_median_px.unwrap_or(f64::NAN)
                )
            };
            eprintln!(
                "epoch {}: loss {loss:.4} ({seconds:.0} s){}{}",
                epoch + 1,
                show("real", &r),
                show("phantom", &p)
            );
            let score = if r.slices > 0 { r.score() } else { p.score() };
            self.last = Some((r, p));
            Some(score)
        }
    }

    fn report_json(r: &DetectionReport) -> serde_json::Value {
        serde_json::json!({ "slices": r.slices, "overall": r.overall, "levels": r.levels, "false_discs": r.false_discs, "false_rate": r.false_rate })
    }

    pub fn run_train_detector(a: TrainDetectorArgs) -> Result<()> {
        let threads = threads_or_all(a.threads);
        endplate::model::inference::set_threads(1);
        let input = DetectorInput::default();
        let mut hasher = Sha256::new();
        let mut real: Vec<DetSample> = Vec::new();
        for m in &a.manifest {
            real.extend(
                manifest_samples(m, &input, &mut hasher)?
                    .into_iter()
                    .map(|(s, _)| s),
            );
        }
        eprintln!("rendering {} training phantoms ...", a.phantoms);
        let t0 = Instant::now();
        let phantoms: Vec<DetSample> = phantom_samples(a.phantoms, a.phantom_seed, &input, threads)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        hasher.update(format!("phantoms {} seed {}", a.phantoms, a.phantom_seed));
        eprintln!(
            "{} phantoms in {:.0} s; {} real slices",
            phantoms.len(),
            t0.elapsed().as_secs_f64(),
            real.len()
        );
        let mut validation = truth_slices(&a.validate)?;
        let real_validation = validation.len();
        validation.extend(phantom_slices(
            a.validate_phantoms,
            a.phantom_seed + 1000,
            threads,
        ));
        let data_hash = format!("{:x}", hasher.finalize());
        let arch = DetectorArch::default();
        let (init, init_name) = match &a.init {
            Some(p) => {
                let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                let proto = endplate::model::file::parse_proto(&p.display().to_string(), &bytes)?;
                (
                    endplate::model::file::read_initializers(&p.display().to_string(), &proto)?,
                    format!("{}", p.display()),
                )
            }
            None => (
                arch.random_weights(a.seed),
                format!("random (seed {})", a.seed),
            ),
        };
        let config = DetectorConfig {
            epochs: a.epochs,
            views_per_epoch: a.views,
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
            real_share: a.real_share,
        };
        let dir = a
            .checkpoints
            .clone()
            .unwrap_or_else(|| crate::train::beside(&a.out, "checkpoints"));
        let mut bars = Bars {
            bar: None,
            validation,
            real_validation,
            input,
            last: None,
        };
        let _ = ctrlc::set_handler(|| {
            eprintln!("\nstopping after this batch; the best detector so far will be written");
            endplate::train::STOP.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let (best, state) = train_detector(
            &phantoms,
            &real,
            &input,
            16.0,
            config.clone(),
            init,
            &data_hash,
            &dir,
            a.resume,
            &mut bars,
        )?;
        // Measure the kept weights once more for the card.
        let mut card = DetectorCard::new(
            &format!("endplate-detector-{}", &data_hash[..8]),
            Training::default(),
        );
        let bytes = write_detector(&arch, &best, &card, BatchNorm::Fold)?;
        let detector = Detector::from_bytes("best", &bytes)?;
        let (rv, pv) = bars.validation.split_at(bars.real_validation);
        let (r, _) = evaluate(&detector, rv)?;
        let (p, _) = evaluate(&detector, pv)?;
        card.training = Training {
            data_description: if a.describe.is_empty() {
                format!(
                    "{} phantom subjects (seed {}) and {} real slices with hand-placed corners",
                    a.phantoms,
                    a.phantom_seed,
                    real.len()
                )
            } else {
                a.describe.clone()
            },
            data_hash: Some(data_hash.clone()),
            synthetic: real.is_empty(),
            epochs: Some(state.next_epoch as u32),
            seed: Some(a.seed),
            init: init_name,
            code_version: endplate::VERSION.into(),
            details: serde_json::json!({
                "config": config, "best_epoch": state.best_epoch, "losses": state.losses,
                "real_training_slices": real.len(), "phantoms": a.phantoms,
                "offset_unit": 16.0,
            }),
        };
        card.metrics = serde_json::json!({ "real_validation": report_json(&r), "phantom_validation": report_json(&p) });
        let bytes = write_detector(&arch, &best, &card, BatchNorm::Fold)?;
        endplate::files::write_atomic(&a.out, &bytes)?;
        if r.slices > 0 {
            println!("real held-out slices:");
            print_report(&r);
        }
        println!("phantom validation slices:");
        print_report(&p);
        eprintln!(
            "wrote {} ({:.1} MB)",
            a.out.display(),
            bytes.len() as f64 / 1e6
        );
        Ok(())
    }
}
