//! `endplate train` and `endplate pretrain` (feature `train`): progress bars and Ctrl-C over the
//! library's trainer, K-fold cross-validation, and the model, backbone and report files.

use crate::evaluate::print_table3;
use clap::Args;
use endplate::{Class, Error, Result, RoiParams};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
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

#[derive(Args)]
pub struct PretrainArgs {
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

struct Bars {
    bar: indicatif::ProgressBar,
}

/// `OUT` without its extension, plus `.suffix`: where a run keeps its checkpoints and report by
/// default.
pub(super) fn beside(out: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", out.with_extension("").display()))
}

/// One training run with a progress bar per epoch; Ctrl-C stops it after the current batch and
/// keeps the best `what` so far.
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

pub fn run_train(a: TrainArgs) -> Result<()> {
    use endplate::train::{self, Dataset, TrainConfig, Unfreeze};
    let ckpt = a
        .checkpoints
        .clone()
        .unwrap_or_else(|| beside(&a.out, "checkpoints"));
    let report = a.report.clone().unwrap_or_else(|| beside(&a.out, "report"));
    let arch = endplate::model::resnet::Architecture::resnet18(4);
    let (init, init_desc) = match &a.init {
        Some(path) => {
            // Read once: the bytes are hashed for the card as well.
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

pub fn run_pretrain(a: PretrainArgs) -> Result<()> {
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
