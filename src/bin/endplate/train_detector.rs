//! `endplate train-detector`: a detector run with a progress bar, a validation pass through
//! tract after every epoch, and the card written with the kept epoch's figures.

use crate::common::threads_or_all;
use crate::detect::{print_report, truth_slices};
use clap::Args;
use endplate::eval::detection::{evaluate, DetectionReport, SliceTruth};
use endplate::model::card::Training;
use endplate::model::detector::{write_detector, Detector, DetectorCard, DetectorInput};
use endplate::model::detector_net::DetectorArch;
use endplate::model::file::BatchNorm;
use endplate::model::resnet::Weights;
use endplate::train::detector::{train_detector, DetectorConfig, DetectorProgress};
use endplate::train::detector_data::{manifest_samples, phantom_samples, phantom_slices};
use endplate::train::detector_views::DetSample;
use endplate::Result;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

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
    /// Start from this detector's weights instead of random ones: a detector file (the bundled
    /// one too; its folded BatchNorms are unfolded and measured on training views) or a run's
    /// checkpoint (detector-last.onnx, detector-best.onnx)
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
    real: Vec<(SliceTruth, endplate::Slice)>,
    phantom: Vec<(SliceTruth, endplate::Slice)>,
}

impl Bars {
    /// The detector with `weights`, run exactly as `detect` runs it (folded, through
    /// tract), on the real and the phantom validation slices.
    fn measure(
        &self,
        weights: &Weights,
        card: &DetectorCard,
    ) -> Result<(DetectionReport, DetectionReport)> {
        let bytes = write_detector(&DetectorArch::default(), weights, card, BatchNorm::Fold)?;
        let detector = Detector::from_bytes("validation", &bytes)?;
        Ok((
            evaluate(&detector, &self.real)?,
            evaluate(&detector, &self.phantom)?,
        ))
    }
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

    fn epoch(&mut self, epoch: usize, loss: f64, seconds: f64, weights: &Weights) -> Option<f64> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let card = DetectorCard::new("validation", Training::default());
        let (r, p) = match self.measure(weights, &card) {
            Ok(m) => m,
            Err(e) => {
                eprintln!(
                    "epoch {}: loss {loss:.4}; validation failed: {e}",
                    epoch + 1
                );
                return None;
            }
        };
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
        Some(if r.slices > 0 { r.score() } else { p.score() })
    }
}

/// A report for the card: everything but the per-slice detail.
fn report_json(r: &DetectionReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("json");
    v.as_object_mut().map(|o| o.remove("per_slice"));
    v
}

/// A detector to continue from: a checkpoint (`detector-last.onnx`, `detector-best.onnx`),
/// whose BatchNorms are kept, or an exported detector (the bundled one, `train-detector --out`),
/// whose BatchNorms are folded into the convolutions and are unfolded here (`true`: their
/// statistics still have to be measured on training views before the run starts).
fn init_weights(path: &std::path::Path, arch: &DetectorArch) -> Result<(Weights, bool)> {
    let w = endplate::model::file::read_weights(path)?;
    if w.keys().any(|k| k.contains(".bn.")) {
        return Ok((w, false));
    }
    match endplate::train::detector::unfold_detector(&w, arch) {
        Some(w) => Ok((w, true)),
        None => Err(endplate::Error::Invalid(format!(
            "{}: --init needs a detector (a file of `endplate train-detector`, or \
             detector-last.onnx / detector-best.onnx of its --checkpoints folder), and this \
             file's weights are not one",
            path.display()
        ))),
    }
}

pub fn run_train_detector(a: TrainDetectorArgs) -> Result<()> {
    let threads = threads_or_all(a.threads);
    endplate::model::inference::set_threads(1);
    let input = DetectorInput::default();
    // The starting weights first: a wrong --init fails before minutes of rendering.
    let arch = DetectorArch::default();
    let (mut init, folded, init_name) = match &a.init {
        Some(p) => {
            let (mut w, folded) = init_weights(p, &arch)?;
            // A detector from before corner maps: its maps are kept, the corner maps start fresh.
            if arch.widen(&mut w, a.seed) {
                eprintln!(
                    "{}: no corner maps; they start from random weights",
                    p.display()
                );
            }
            (w, folded, p.display().to_string())
        }
        None => (
            arch.random_weights(a.seed),
            false,
            format!("random (seed {})", a.seed),
        ),
    };
    let mut hasher = Sha256::new();
    let validation = truth_slices(&a.validate)?;
    let held_out: HashSet<String> = validation.iter().map(|(t, _)| t.subject.clone()).collect();
    let mut real: Vec<DetSample> = Vec::new();
    for m in &a.manifest {
        let (samples, left_out) = manifest_samples(m, &input, &mut hasher, &held_out)?;
        if left_out > 0 {
            eprintln!(
                "{}: {left_out} slices left out, their patients are in --validate",
                m.display()
            );
        }
        real.extend(samples);
    }
    eprintln!("rendering {} training phantoms ...", a.phantoms);
    let t0 = Instant::now();
    let phantoms = phantom_samples(a.phantoms, a.phantom_seed, &input, threads);
    hasher.update(format!("phantoms {} seed {}", a.phantoms, a.phantom_seed));
    eprintln!(
        "{} phantoms in {:.0} s; {} real slices",
        phantoms.len(),
        t0.elapsed().as_secs_f64(),
        real.len()
    );
    if folded && !a.resume {
        init = endplate::train::detector::restat_for_training(
            &init, &arch, &phantoms, &real, &input, a.seed,
        )?;
        eprintln!(
            "{init_name}: an exported detector; its BatchNorms unfolded and their statistics \
             measured on {} training views",
            endplate::train::detector::RESTAT_VIEWS
        );
    }
    let mut bars = Bars {
        bar: None,
        real: validation,
        phantom: phantom_slices(a.validate_phantoms, a.phantom_seed + 1000, threads),
    };
    let data_hash = format!("{:x}", hasher.finalize());
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
    let _ = ctrlc::set_handler(|| {
        eprintln!("\nstopping after this batch; the best detector so far will be written");
        endplate::train::STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let (best, state) = train_detector(
        &phantoms,
        &real,
        &input,
        config.clone(),
        init,
        &data_hash,
        &dir,
        a.resume,
        &mut bars,
    )?;
    // The kept weights are measured again for the card: a resumed run that had nothing
    // left to do never measured them in this process.
    let mut card = DetectorCard::new(
        &format!("endplate-detector-{}", &data_hash[..8]),
        Training::default(),
    );
    let (r, p) = bars.measure(&best, &card)?;
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
