//! The native command line: one binary, one subcommand per task of SPEC.md.

use clap::{Args, Parser, Subcommand};
use endplate::image::decode::DecodeOptions;
use endplate::manifest::{self, Row};
use endplate::{Class, Classifier, Error, Level, Point, Prediction, Result, Roi, RoiParams};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "endplate",
    version,
    about = "Classify lumbar endplate lesions on sagittal T2 MRI (normal, wavy/irregular, notched, Schmorl's node)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the ROI of one disc as the model sees it (128x128 gray PNG)
    Roi(RoiArgs),
    /// Classify one disc (--image and --corners) or every row of a manifest
    Classify(ClassifyArgs),
    /// Make a phantom data set: synthetic sagittal T2 slices with known lesions and corners
    Synth(SynthArgs),
    /// Fine-tune ResNet18 on a labelled manifest (the paper's protocol); writes the model file
    #[cfg(feature = "train")]
    Train(TrainArgs),
    /// The paper's Table 3 for a model on a labelled manifest, with bootstrap intervals
    Evaluate(EvaluateArgs),
    /// Pretrain a backbone without lesion labels (self-supervised: which way up is each disc
    /// region?), for `train --init`
    #[cfg(feature = "train")]
    Pretrain(PretrainArgs),
}

#[derive(Args)]
struct EvaluateArgs {
    /// Model file (ONNX with its card); default: the bundled model
    #[arg(long)]
    model: Option<PathBuf>,
    /// Labelled manifest CSV
    #[arg(long)]
    manifest: PathBuf,
    /// Bootstrap resamples
    #[arg(long, default_value_t = 500)]
    bootstrap: usize,
    /// Bootstrap seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Machine-readable output (SPEC.md's `evaluate --json`)
    #[arg(long)]
    json: bool,
    /// Also write a report folder here: metrics.json, confusion.csv and SVG charts (confusion,
    /// one-vs-rest ROC, reliability)
    #[arg(long)]
    report: Option<PathBuf>,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

#[cfg(feature = "train")]
#[derive(Args)]
struct TrainArgs {
    /// Labelled manifest CSV (image,subject,level,label,x1,...,y4)
    #[arg(long)]
    manifest: PathBuf,
    /// Output model file
    #[arg(long)]
    out: PathBuf,
    /// Epochs
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Batch size
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Initial learning rate (divided by ten on a plateau)
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Epochs without validation improvement before the learning rate drops
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Seed of the split, sampler, augmentation and random init
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep each subject on one side of the split
    #[arg(long, default_value = "disc", value_parser = ["disc", "subject"])]
    split_by: String,
    /// progressive (the paper: head first, deeper stages later) or all (from scratch)
    #[arg(long, default_value = "progressive", value_parser = ["progressive", "all"])]
    unfreeze: String,
    /// Backbone weights: a torchvision ResNet18 exported to ONNX (do_constant_folding=False)
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue the run whose checkpoint is in --checkpoints
    #[arg(long)]
    resume: bool,
    /// Checkpoint folder (default: OUT without extension + .checkpoints)
    #[arg(long)]
    checkpoints: Option<PathBuf>,
    /// Report folder (default: OUT without extension + .report)
    #[arg(long)]
    report: Option<PathBuf>,
    /// Free-text description of the data for the model card
    #[arg(long, default_value = "")]
    describe: String,
    /// The data are synthetic phantoms (the card and the page then say so)
    #[arg(long)]
    synthetic: bool,
    /// K-fold cross-validation instead of one 80/20 split: trains K models (each fold held out
    /// once), writes each under REPORT/fold-K/ and reports mean ± sd; --out is not written
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=20))]
    folds: Option<u32>,
}

#[cfg(feature = "train")]
#[derive(Args)]
struct PretrainArgs {
    /// Manifests whose discs to use; labels are ignored, so unlabelled data serve (repeatable)
    #[arg(long, required = true)]
    manifest: Vec<PathBuf>,
    /// Output backbone (ONNX, BatchNorm kept, for `train --init`)
    #[arg(long)]
    out: PathBuf,
    /// Use at most this many discs of each manifest (its first rows)
    #[arg(long)]
    max_discs: Option<usize>,
    /// Epochs over the four quarter turns of every disc
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Batch size
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Seed of the split, sampler, augmentation and random init
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Continue the run whose checkpoint is in OUT without extension + .checkpoints
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// Output folder (images/, manifest.csv, truth.json)
    #[arg(long)]
    out: PathBuf,
    /// Number of subjects (five discs each, L1L2..L5S1)
    #[arg(long, default_value_t = 10)]
    subjects: usize,
    /// Seed: the same seed gives the same bytes
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bits per pixel of the PNGs
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(8..=16))]
    bits: u16,
    /// Class frequencies: the paper's Tables 1-2, or a quarter each
    #[arg(long, default_value = "paper")]
    class_mix: String,
    /// Rendering threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct DiscArgs {
    /// Slice image: DICOM, PNG (8/16-bit) or JPEG
    #[arg(long)]
    image: Option<PathBuf>,
    /// The four endplate corners in pixels, any order: x1,y1,x2,y2,x3,y3,x4,y4
    #[arg(long, allow_hyphen_values = true)]
    corners: Option<String>,
    /// Frame of a multi-frame DICOM (0-based; default: the middle frame)
    #[arg(long)]
    frame: Option<u32>,
}

#[derive(Args)]
struct RoiArgs {
    #[command(flatten)]
    disc: DiscArgs,
    /// Output PNG
    #[arg(long)]
    out: PathBuf,
    /// Take the preprocessing parameters from this model's card (default: SPEC.md's defaults)
    #[arg(long)]
    model: Option<PathBuf>,
}

#[derive(Args)]
struct ClassifyArgs {
    #[command(flatten)]
    disc: DiscArgs,
    /// Level of the single disc (L1L2 ... L5S1), echoed in the output
    #[arg(long)]
    level: Option<String>,
    /// Manifest CSV (image,subject,level,label,x1,...,y4): classify every row
    #[arg(long, conflicts_with_all = ["image", "corners"])]
    manifest: Option<PathBuf>,
    /// Model file (ONNX with its card); default: the bundled model
    #[arg(long)]
    model: Option<PathBuf>,
    /// Machine-readable output (SPEC.md's `classify --json`)
    #[arg(long)]
    json: bool,
    /// Discs per network run
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_corners(s: &str) -> Result<[Point; 4]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|t| t.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::Corners(format!(
                "--corners `{s}`: {e}; give eight numbers x1,y1,...,x4,y4"
            ))
        })?;
    if v.len() != 8 {
        return Err(Error::Corners(format!(
            "--corners needs eight numbers x1,y1,...,x4,y4, got {}",
            v.len()
        )));
    }
    Ok(std::array::from_fn(|i| Point::new(v[2 * i], v[2 * i + 1])))
}

/// The bundled model beside the sources (a development checkout) or beside the binary.
fn default_model() -> Result<PathBuf> {
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/endplate-default.onnx"),
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("endplate-default.onnx")))
            .unwrap_or_default(),
    ];
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::Invalid(
            "no bundled model found (models/endplate-default.onnx): pass --model FILE.onnx".into(),
        )
    })
}

fn load_model(path: Option<&Path>) -> Result<Classifier> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => default_model()?,
    };
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Classifier::from_bytes(&path.display().to_string(), &bytes)
}

/// The discs to work on: the single `--image/--corners` disc, or the manifest's rows with their
/// image paths resolved against the manifest's folder.
fn discs(
    disc: &DiscArgs,
    manifest: Option<&Path>,
    level: Option<&str>,
) -> Result<(Vec<Row>, PathBuf)> {
    if let Some(m) = manifest {
        let text = std::fs::read_to_string(m).map_err(|e| Error::io(m, e))?;
        let rows = manifest::parse(&m.display().to_string(), &text)?;
        let base = m.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok((rows, base));
    }
    let (Some(image), Some(corners)) = (&disc.image, &disc.corners) else {
        return Err(Error::Invalid(
            "give --image and --corners for one disc, or --manifest CSV".into(),
        ));
    };
    let level = level.map(str::parse::<Level>).transpose()?;
    let row = Row {
        image: image.display().to_string(),
        subject: String::new(),
        level,
        label: None,
        corners: parse_corners(corners)?,
    };
    Ok((vec![row], PathBuf::new()))
}

/// Decode every distinct image once and cut the ROIs of all its discs.
fn rois(rows: &[Row], base: &Path, frame: Option<u32>, p: &RoiParams) -> Result<Vec<Roi>> {
    manifest::rois(rows, base, DecodeOptions { frame }, p, |_| ())
}

fn run_roi(a: RoiArgs) -> Result<()> {
    let params = match &a.model {
        Some(m) => load_model(Some(m))?.card().preprocessing.clone(),
        None => RoiParams::default(),
    };
    let (rows, base) = discs(&a.disc, None, None)?;
    let roi = rois(&rows, &base, a.disc.frame, &params)?.remove(0);
    let img = image::GrayImage::from_raw(roi.size as u32, roi.size as u32, roi.to_gray8())
        .expect("size matches");
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("encoding PNG: {e}")))?;
    endplate::files::write_atomic(&a.out, &png)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

/// The asked thread count, or every core.
fn threads_or_all(asked: Option<usize>) -> usize {
    asked
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1)
}

fn run_classify(a: ClassifyArgs) -> Result<()> {
    let threads = threads_or_all(a.threads);
    endplate::model::inference::set_threads(threads);
    let model = load_model(a.model.as_deref())?;
    let (rows, base) = discs(&a.disc, a.manifest.as_deref(), a.level.as_deref())?;
    let start = Instant::now();
    let rois = rois(&rows, &base, a.disc.frame, &model.card().preprocessing)?;
    let mut preds: Vec<Prediction> = Vec::with_capacity(rows.len());
    for chunk in rois.chunks(a.batch.max(1)) {
        preds.extend(model.classify(chunk)?);
    }
    let secs = start.elapsed().as_secs_f64();

    if a.json {
        let results: Vec<_> = rows
            .iter()
            .zip(&preds)
            .map(|(r, p)| {
                serde_json::json!({
                    "image": r.image,
                    "level": r.level.map(|l| l.id()),
                    "label": p.class.id(),
                    "truth": r.label.map(|c| c.id()),
                    "probabilities": Class::ALL.iter().map(|c| (c.id().to_string(), serde_json::json!(p.probabilities[c.index()]))).collect::<serde_json::Map<_, _>>(),
                    "logits": p.logits,
                    "corners": r.corners.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = serde_json::json!({ "model": endplate::model::card::summary(model.card()), "results": results });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        if let Some(w) = model.card().display_warning() {
            eprintln!("note: {w}");
        }
        println!(
            "{:<28} {:<5} {:<15} {:>7} {:>7} {:>8} {:>8}  truth",
            "image", "level", "class", "normal", "wavy", "notched", "schmorl"
        );
        for (r, p) in rows.iter().zip(&preds) {
            let name = if r.image.len() > 28 {
                &r.image[r.image.len() - 28..]
            } else {
                &r.image
            };
            let pr = p.probabilities;
            println!(
                "{:<28} {:<5} {:<15} {:>7.3} {:>7.3} {:>8.3} {:>8.3}  {}",
                name,
                r.level.map(|l| l.id()).unwrap_or("-"),
                p.class.display_name(),
                pr[0],
                pr[1],
                pr[2],
                pr[3],
                r.label.map(|c| c.id()).unwrap_or("")
            );
        }
    }
    eprintln!(
        "{} discs in {:.2} s ({:.1} discs/s, {} thread{}, batch {})",
        rows.len(),
        secs,
        rows.len() as f64 / secs,
        threads,
        if threads == 1 { "" } else { "s" },
        a.batch
    );
    Ok(())
}

fn encode_png(slice: &endplate::Slice) -> Result<Vec<u8>> {
    let (w, h) = (slice.width as u32, slice.height as u32);
    let mut out = Vec::new();
    let mut cursor = std::io::Cursor::new(&mut out);
    let r = if slice.bits <= 8 {
        image::GrayImage::from_raw(w, h, slice.pixels.iter().map(|&v| v as u8).collect())
            .expect("size")
            .write_to(&mut cursor, image::ImageFormat::Png)
    } else {
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(
            w,
            h,
            slice.pixels.iter().map(|&v| v as u16).collect::<Vec<u16>>(),
        )
        .expect("size")
        .write_to(&mut cursor, image::ImageFormat::Png)
    };
    r.map_err(|e| Error::Invalid(format!("encoding PNG: {e}")))?;
    Ok(out)
}

/// One rendered subject's manifest rows and truth records.
type SubjectRows = (Vec<Row>, Vec<serde_json::Value>);

fn run_synth(a: SynthArgs) -> Result<()> {
    use endplate::phantom::{plan_subject, render, ClassMix};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let mix: ClassMix = a.class_mix.parse()?;
    if a.bits != 8 && a.bits != 16 {
        return Err(Error::Invalid(format!("--bits {}: give 8 or 16", a.bits)));
    }
    let threads = threads_or_all(a.threads);
    let images = a.out.join("images");
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let bar = indicatif::ProgressBar::new(a.subjects as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} slices  {per_sec}  eta {eta}",
        )
        .expect("template"),
    );
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SubjectRows>>> = Mutex::new(vec![None; a.subjects]);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= a.subjects || failure.lock().unwrap().is_some() {
                    break;
                }
                let plan = plan_subject(a.seed, i, mix, a.bits);
                let ph = render(&plan);
                let file = format!("images/{}.png", plan.id);
                let written = encode_png(&ph.slice).and_then(|png| endplate::files::write_atomic(&a.out.join(&file), &png));
                if let Err(e) = written {
                    *failure.lock().unwrap() = Some(e);
                    break;
                }
                let rows = ph.discs.iter().map(|d| Row { image: file.clone(), subject: plan.id.clone(), level: Some(d.level), label: Some(d.class), corners: d.corners }).collect();
                let truth = ph.discs.iter().map(|d| serde_json::json!({"image": file, "subject": plan.id, "age": plan.age, "spacing_mm": plan.spacing_mm, "disc": d})).collect();
                results.lock().unwrap()[i] = Some((rows, truth));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let (mut rows, mut truth) = (Vec::new(), Vec::new());
    for (r, t) in results.into_inner().unwrap().into_iter().flatten() {
        rows.extend(r);
        truth.extend(t);
    }
    endplate::files::write_atomic(
        &a.out.join("manifest.csv"),
        manifest::write(&rows, &[], &[]).as_bytes(),
    )?;
    let truth = serde_json::json!({"seed": a.seed, "class_mix": a.class_mix, "bits": a.bits, "discs": truth});
    endplate::files::write_atomic(
        &a.out.join("truth.json"),
        serde_json::to_string_pretty(&truth)
            .expect("json")
            .as_bytes(),
    )?;
    let secs = start.elapsed().as_secs_f64();
    let mut counts = [0usize; 4];
    rows.iter()
        .for_each(|r| counts[r.label.map(|c| c.index()).unwrap_or(0)] += 1);
    eprintln!(
        "{} slices, {} discs (normal {}, wavy {}, notched {}, schmorl {}) in {:.1} s: {:.2} slices/s on {} thread{} -> {}",
        a.subjects, rows.len(), counts[0], counts[1], counts[2], counts[3], secs, a.subjects as f64 / secs, threads,
        if threads == 1 { "" } else { "s" }, a.out.display()
    );
    Ok(())
}

fn print_table3(m: &serde_json::Value) {
    let pct = |v: &serde_json::Value| {
        format!(
            "{:5.1} ({:5.1}-{:5.1})",
            100.0 * v["mean"].as_f64().unwrap_or(f64::NAN),
            100.0 * v["lo"].as_f64().unwrap_or(f64::NAN),
            100.0 * v["hi"].as_f64().unwrap_or(f64::NAN)
        )
    };
    println!(
        "n = {} discs; bootstrap mean (95 % interval), percent",
        m["n"]
    );
    println!("overall accuracy     {}", pct(&m["accuracy"]));
    for c in Class::ALL {
        println!(
            "sensitivity {:<9}{}",
            c.id(),
            pct(&m["per_class"][c.id()]["sensitivity"])
        );
    }
    println!(
        "one-vs-rest, macro:  AUC {}  accuracy {}",
        pct(&m["auc"]),
        pct(&m["ovr_accuracy"])
    );
    println!(
        "                     precision {}  recall {}",
        pct(&m["precision"]),
        pct(&m["recall"])
    );
    println!(
        "                     specificity {}  F1 {}",
        pct(&m["specificity"]),
        pct(&m["f1"])
    );
    println!("confusion (rows truth, columns predicted; normal wavy notched schmorl):");
    if let Some(rows) = m["confusion"].as_array() {
        for (c, r) in Class::ALL.iter().zip(rows) {
            println!("  {:<8} {}", c.id(), r);
        }
    }
}

fn run_evaluate(a: EvaluateArgs) -> Result<()> {
    let threads = threads_or_all(a.threads);
    endplate::model::inference::set_threads(threads);
    let model = load_model(a.model.as_deref())?;
    let text = std::fs::read_to_string(&a.manifest).map_err(|e| Error::io(&a.manifest, e))?;
    let name = a.manifest.display().to_string();
    let rows = manifest::parse(&name, &text)?;
    if let Some(i) = rows.iter().position(|r| r.label.is_none()) {
        return Err(Error::Manifest {
            file: name,
            row: i + 2,
            field: "label".into(),
            reason: "empty: evaluation needs a label on every row".into(),
        });
    }
    let base = a
        .manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let rois = rois(&rows, &base, None, &model.card().preprocessing)?;
    let mut probs = Vec::with_capacity(rows.len());
    for chunk in rois.chunks(16) {
        probs.extend(model.classify(chunk)?.into_iter().map(|p| p.probabilities));
    }
    let truth: Vec<Class> = rows.iter().map(|r| r.label.expect("checked")).collect();
    let metrics = endplate::eval::metrics::evaluate(&truth, &probs, a.bootstrap, a.seed);
    if let Some(dir) = &a.report {
        endplate::eval::report::write(dir, &metrics, &truth, &probs, &[])?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&metrics).expect("json"));
    } else {
        if let Some(w) = model.card().display_warning() {
            eprintln!("note: {w}");
        }
        print_table3(&metrics);
    }
    Ok(())
}

#[cfg(feature = "train")]
struct Bars {
    bar: indicatif::ProgressBar,
}

/// `OUT` without its extension, plus `.suffix`: where a run keeps its checkpoints and report by
/// default.
#[cfg(feature = "train")]
fn beside(out: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", out.with_extension("").display()))
}

/// One training run with a progress bar per epoch; Ctrl-C stops it after the current batch and
/// keeps the best `what` so far.
#[cfg(feature = "train")]
fn run_training(
    what: &'static str,
    data: &endplate::train::Dataset,
    config: endplate::train::TrainConfig,
    init: endplate::model::resnet::Weights,
    ckpt: &Path,
    resume: bool,
) -> Result<endplate::train::Trained> {
    // Made now, so a folder that cannot be written fails before the first epoch, not after it.
    std::fs::create_dir_all(ckpt).map_err(|e| Error::io(ckpt, e))?;
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nstopping after this batch; the best {what} so far will be written");
        endplate::train::STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} eta {eta}")
            .expect("template"),
    );
    let mut progress = Bars { bar };
    let trained = endplate::train::train(data, config, init, ckpt, resume, &mut progress);
    progress.bar.finish_and_clear();
    trained
}

#[cfg(feature = "train")]
impl endplate::train::Progress for Bars {
    fn batch(
        &mut self,
        epoch: usize,
        done: usize,
        total: usize,
        loss: f64,
        accuracy: f64,
        lr: f64,
    ) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar.set_message(format!(
            "epoch {} loss {loss:.3} acc {:.1}% lr {lr:.0e}",
            epoch + 1,
            100.0 * accuracy
        ));
    }
    fn epoch(&mut self, l: &endplate::train::EpochLog) {
        // A hidden bar (standard error not a terminal, e.g. a log file) drops println.
        let say = |line: String| {
            if self.bar.is_hidden() {
                eprintln!("{line}")
            } else {
                self.bar.println(line)
            }
        };
        say(format!(
            "epoch {:>3}  train loss {:.3} acc {:5.1}%  val loss {:.3} acc {:5.1}%  lr {:.0e}  stages {}  {:.0} s ({:.1} img/s)",
            l.epoch + 1, l.train_loss, 100.0 * l.train_accuracy, l.val_loss, 100.0 * l.val_accuracy, l.lr, l.stages_open, l.seconds, l.images_per_second
        ));
        self.bar.reset();
    }
}

#[cfg(feature = "train")]
fn run_train(a: TrainArgs) -> Result<()> {
    use endplate::train::{self, Dataset, TrainConfig, Unfreeze};
    let ckpt = a
        .checkpoints
        .clone()
        .unwrap_or_else(|| beside(&a.out, "checkpoints"));
    let report = a.report.clone().unwrap_or_else(|| beside(&a.out, "report"));
    let arch = endplate::model::resnet::Architecture::resnet18(4);
    let (init, init_desc) = match &a.init {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let proto = endplate::model::file::parse_proto(&path.display().to_string(), &bytes)?;
            let mut w =
                endplate::model::file::read_initializers(&path.display().to_string(), &proto)?;
            // Keep the backbone, start a fresh 4-class head.
            let fresh = arch.random_weights(a.seed);
            for k in ["fc.weight", "fc.bias"] {
                w.insert(k.into(), fresh[k].clone());
            }
            arch.check(&w).map_err(|e| {
                Error::model(path.display(), format!("not a torchvision ResNet18: {e}"))
            })?;
            (
                w,
                format!(
                    "{} (sha256 {:x})",
                    path.display(),
                    <sha2::Sha256 as sha2::Digest>::digest(&bytes)
                ),
            )
        }
        None => (
            arch.random_weights(a.seed),
            format!("random Kaiming init (seed {})", a.seed),
        ),
    };
    eprintln!("reading {}", a.manifest.display());
    let data = Dataset::load(&a.manifest, &endplate::RoiParams::default())?;
    let mut counts = [0usize; 4];
    data.classes.iter().for_each(|c| counts[c.index()] += 1);
    eprintln!(
        "{} labelled discs (normal {}, wavy {}, notched {}, schmorl {})",
        data.rois.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    let config = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        patience: a.patience,
        seed: a.seed,
        unfreeze: if a.unfreeze == "all" {
            Unfreeze::All
        } else {
            Unfreeze::Progressive
        },
        split_by_subject: a.split_by == "subject",
        data_description: if a.describe.is_empty() {
            format!("{} ({} discs)", a.manifest.display(), data.rois.len())
        } else {
            a.describe.clone()
        },
        synthetic: a.synthetic,
        init: init_desc,
        ..TrainConfig::default()
    };
    let Some(k) = a.folds else {
        let (bytes, _) = train_and_report(&data, config, init, &ckpt, a.resume, &report)?;
        endplate::files::write_atomic(&a.out, &bytes)?;
        eprintln!(
            "wrote {} ({} bytes); report in {}",
            a.out.display(),
            bytes.len(),
            report.display()
        );
        return Ok(());
    };
    let k = k as usize;
    let mut folds = Vec::with_capacity(k);
    for f in 0..k {
        let name = format!("fold-{}", f + 1);
        let fold_report = report.join(&name);
        let fold_model = fold_report.join("model.onnx");
        let done = fold_report.join("metrics.json");
        if a.resume && fold_model.is_file() && done.is_file() {
            eprintln!("{name} of {k}: done in an earlier run, kept");
            let text = std::fs::read_to_string(&done).map_err(|e| Error::io(&done, e))?;
            folds.push(
                serde_json::from_str(&text)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", done.display())))?,
            );
            continue;
        }
        eprintln!("{name} of {k}");
        let fold_ckpt = ckpt.join(&name);
        let resume = a.resume && endplate::train::checkpoint_state_path(&fold_ckpt).is_file();
        let cfg = TrainConfig {
            fold: Some(train::Fold { index: f, of: k }),
            ..config.clone()
        };
        let (bytes, metrics) =
            train_and_report(&data, cfg, init.clone(), &fold_ckpt, resume, &fold_report)?;
        endplate::files::write_atomic(&fold_model, &bytes)?;
        folds.push(metrics);
        if train::STOP.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Invalid(format!(
                "stopped during {name}; --resume continues from there"
            )));
        }
    }
    let cv = endplate::eval::metrics::cross_validation(&folds);
    endplate::files::write_atomic(
        &report.join("cross_validation.json"),
        serde_json::to_string_pretty(&cv).expect("json").as_bytes(),
    )?;
    let line = |label: &str, v: &serde_json::Value| {
        println!(
            "{label:<22}{:5.1} ± {:4.1}",
            100.0 * v["mean"].as_f64().unwrap_or(f64::NAN),
            100.0 * v["sd"].as_f64().unwrap_or(f64::NAN)
        )
    };
    println!(
        "{k}-fold cross-validation, {} discs; mean ± sd over folds, percent",
        cv["n"]
    );
    line("overall accuracy", &cv["accuracy"]);
    for c in Class::ALL {
        line(
            &format!("sensitivity {}", c.id()),
            &cv["per_class"][c.id()]["sensitivity"],
        );
    }
    for key in endplate::eval::metrics::MACRO_METRICS {
        line(&format!("{key} (macro)"), &cv[key]);
    }
    eprintln!(
        "fold models and reports in {}; {} was not written (train without --folds for the model to use)",
        report.display(),
        a.out.display()
    );
    Ok(())
}

/// One training run to its calibrated model file (bytes) and validation metrics, with its
/// report folder written.
#[cfg(feature = "train")]
fn train_and_report(
    data: &endplate::train::Dataset,
    config: endplate::train::TrainConfig,
    init: endplate::model::resnet::Weights,
    ckpt: &Path,
    resume: bool,
    report: &Path,
) -> Result<(Vec<u8>, serde_json::Value)> {
    let arch = endplate::model::resnet::Architecture::resnet18(4);
    let mut trained = run_training("model", data, config, init, ckpt, resume)?;
    // Metrics of the calibrated model on the validation set, into the card and the report.
    let probs: Vec<[f32; 4]> = trained
        .val_logits
        .iter()
        .map(|l| trained.card.calibration.probabilities(l))
        .collect();
    let metrics = endplate::eval::metrics::evaluate(&trained.val_truth, &probs, 500, 1);
    trained.card.metrics = metrics.clone();
    let mut with_history = metrics.clone();
    with_history["history"] = serde_json::to_value(&trained.state.history).expect("json");
    endplate::eval::report::write(
        report,
        &with_history,
        &trained.val_truth,
        &probs,
        &endplate::train::learning_curves(&trained.state.history),
    )?;
    print_table3(&metrics);
    if trained.stopped_early {
        eprintln!("stopped early: the model is the best epoch so far");
    }
    let bytes = endplate::model::file::write_model(
        &arch,
        &trained.weights,
        &trained.card,
        endplate::model::file::BatchNorm::Fold,
    )?;
    Ok((bytes, metrics))
}

#[cfg(feature = "train")]
fn run_pretrain(a: PretrainArgs) -> Result<()> {
    use endplate::train::{self, TrainConfig, Unfreeze};
    let data = train::Dataset::load_pretext(&a.manifest, a.max_discs, &RoiParams::default())?;
    eprintln!("{} discs in four quarter turns each", data.rois.len() / 4);
    let config = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        seed: a.seed,
        unfreeze: Unfreeze::All,
        // No flips: a flipped quarter turn is another turn of the flipped image.
        augment: endplate::train::augment::Augment {
            flip: 0.0,
            ..Default::default()
        },
        split_by_subject: true,
        data_description: format!(
            "self-supervised rotation pretext on {} discs of {}",
            data.rois.len() / 4,
            a.manifest
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        init: format!("random Kaiming init (seed {})", a.seed),
        ..TrainConfig::default()
    };
    let ckpt = beside(&a.out, "checkpoints");
    let arch = endplate::model::resnet::Architecture::resnet18(4);
    let trained = run_training(
        "backbone",
        &data,
        config,
        arch.random_weights(a.seed),
        &ckpt,
        a.resume,
    )?;
    let bytes = endplate::model::file::write_model(
        &arch,
        &trained.weights,
        &trained.card,
        endplate::model::file::BatchNorm::Keep,
    )?;
    endplate::files::write_atomic(&a.out, &bytes)?;
    eprintln!(
        "wrote {} (pretext validation accuracy {:.1} % on {} turned discs, chance 25 %); use it with train --init",
        a.out.display(),
        100.0 * train::accuracy(&trained.val_logits, &trained.val_truth),
        trained.val_truth.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Roi(a) => run_roi(a),
        Command::Classify(a) => run_classify(a),
        Command::Synth(a) => run_synth(a),
        #[cfg(feature = "train")]
        Command::Train(a) => run_train(a),
        #[cfg(feature = "train")]
        Command::Pretrain(a) => run_pretrain(a),
        Command::Evaluate(a) => run_evaluate(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
