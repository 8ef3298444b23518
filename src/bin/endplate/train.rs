//! `endplate train` and `endplate pretrain` (feature `train`): progress bars and Ctrl-C over the
//! library's trainer, K-fold cross-validation, and the model, backbone and report files.

use crate::evaluate::print_table3;
use clap::Args;
use endplate::{Class, Classifier, Error, Label, Result, RoiParams};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
    /// Labelled manifest CSV (image,subject,level,label,x1,...,y4). Repeat it to learn from
    /// several data sets at once (e.g. real discs labelled normal/lesion and four-class
    /// phantoms): the sampler draws each manifest equally often, and within it each label
    /// equally often
    #[arg(long, required = true)]
    manifest: Vec<PathBuf>,
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
    /// plateau (the paper: --lr divided by ten after --patience epochs without improvement) or
    /// cosine (half a cosine from --lr to zero over the run, batch by batch: the last epoch,
    /// which --keep-last keeps, is then taken at a small rate)
    #[arg(long, default_value = "plateau", value_parser = ["plateau", "cosine"])]
    lr_schedule: String,
    /// Seed of the split, sampler, augmentation and random init
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep each subject on one side of the split
    #[arg(long, default_value = "disc", value_parser = ["disc", "subject"])]
    split_by: String,
    /// progressive (the paper: head first, deeper stages later), all (from scratch), top0 (the
    /// head alone: a model that already knows real discs learns the phantoms' lesion types
    /// beside them) or top1 to top4 (the head and the last 1-4 stages for the whole run:
    /// fine-tuning a backbone that already knows spines, two to three times faster on a CPU)
    #[arg(long, default_value = "progressive", value_parser = ["progressive", "all", "top0", "top1", "top2", "top3", "top4"])]
    unfreeze: String,
    /// Starting weights: a torchvision ResNet18 exported to ONNX (do_constant_folding=False) or
    /// an endplate model. With --folds also an earlier cross-validation's report folder: fold K
    /// then starts from its fold-K/model.onnx, so a recipe in stages is cross-validated without
    /// a held-out patient having been learnt in an earlier stage (same --seed and --split-by;
    /// checked against that folder's predictions)
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
    /// Keep the last epoch instead of the one with the lowest validation loss. Use it with
    /// --folds: there the validation set is the held-out fold, and picking an epoch on it would
    /// flatter the figures
    #[arg(long)]
    keep_last: bool,
    /// Also learn from ROIs cut with every corner moved at random: the standard deviation of a
    /// move, each axis, as a fraction of the disc's width (0.03 is about 1.2 mm on a 40 mm
    /// disc), so the classes depend less on where exactly the corners were put
    #[arg(long, value_parser = jitter_fraction)]
    corner_jitter: Option<f64>,
    /// Average each disc's outputs with its mirror image's (anterior and posterior swapped),
    /// in validation, calibration and the written model's card: steadier than one view, at
    /// twice the cost per disc wherever the model runs. Learning is unchanged, so `--resume`
    /// of a finished run with it only recalibrates and rewrites that run's model
    #[arg(long)]
    mirror_average: bool,
    /// Keep none of this manifest's discs for validation (1 = the first --manifest;
    /// repeatable): every one of them trains, and the other manifests' validation discs still
    /// show how the run goes. Needs --calibrate-on-folds, since those discs would otherwise
    /// calibrate the model
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    no_validation_of: Vec<u32>,
    /// Fit the calibration on the out-of-fold logits of the cross-validation in this report
    /// folder (`train --folds K --report DIR` with the same manifests, --seed and --split-by):
    /// each DIR/fold-K/model.onnx runs on the discs its fold held out
    #[arg(long)]
    calibrate_on_folds: Option<PathBuf>,
    /// Jittered ROIs cut per disc with --corner-jitter (more: more memory, more variety)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
    jitter_copies: u32,
    /// How much of every epoch each --manifest gets, one per --manifest in the same order
    /// (e.g. `--share 3 --share 1`: three quarters real discs, one quarter phantoms, whatever
    /// their sizes). Default: equal shares
    #[arg(long, value_parser = share_value)]
    share: Vec<f64>,
    /// Also learn these manifest columns (0, 1 or a probability; empty where unknown), one extra
    /// output each during training, dropped from the written model: other gradings of the same
    /// disc give the backbone more to learn from than one noisy label (repeatable, or
    /// comma-separated; a manifest without the column leaves its discs out of that target)
    #[arg(long, value_delimiter = ',')]
    auxiliary: Vec<String>,
    /// Weight of the auxiliary columns' mean loss against the label's loss
    #[arg(long, default_value_t = 0.5, value_parser = auxiliary_weight)]
    auxiliary_weight: f64,
    /// Beside the paper's shifts, turns and flips, zoom each drawn ROI by up to this fraction
    /// (0.1: between 1/1.1 and 1.1 times as large). Default 0, as in the paper
    #[arg(long, default_value_t = 0.0, value_parser = augment_fraction)]
    augment_scale: f64,
    /// Raise each drawn ROI's gray values to a power between 1/(1+G) and 1+G (0.3: as different
    /// scanners and echo times darken or lighten mid-grays). Default 0, as in the paper
    #[arg(long, default_value_t = 0.0, value_parser = augment_fraction)]
    augment_gamma: f64,
    /// Scale each drawn ROI's contrast about mid-gray by 1-C to 1+C. Default 0, as in the paper
    #[arg(long, default_value_t = 0.0, value_parser = augment_fraction)]
    augment_contrast: f64,
}

fn augment_fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=0.5).contains(&f) => Ok(f),
        _ => Err(format!(
            "`{s}`: a fraction in [0, 0.5], e.g. 0.1 (0 turns it off)"
        )),
    }
}

fn auxiliary_weight(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=10.0).contains(&f) => Ok(f),
        _ => Err(format!("`{s}`: a weight in [0, 10], e.g. 0.5")),
    }
}

fn share_value(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(f),
        _ => Err(format!(
            "`{s}`: a positive number, e.g. 3 (relative to the other --share values)"
        )),
    }
}

fn jitter_fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 0.2 => Ok(f),
        _ => Err(format!(
            "`{s}`: a fraction of the disc's width in (0, 0.2], e.g. 0.03 (about 1.2 mm)"
        )),
    }
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
    if !a.share.is_empty() && a.share.len() != a.manifest.len() {
        return Err(Error::Invalid(format!(
            "--share: {} values for {} --manifest files; give one per manifest, in the same order",
            a.share.len(),
            a.manifest.len()
        )));
    }
    let calibration_folds = check_calibration_folds(&a)?;
    let ckpt = a
        .checkpoints
        .clone()
        .unwrap_or_else(|| beside(&a.out, "checkpoints"));
    let report = a.report.clone().unwrap_or_else(|| beside(&a.out, "report"));
    let arch = endplate::model::resnet::Architecture::resnet18(4);
    // With --folds, --init may be an earlier cross-validation's report folder: fold K starts
    // from its fold-K model. The subjects each of its folds held out are read here, once, so a
    // folder that cannot serve fails before the data are read.
    let init_folds = match a.init.as_ref().filter(|p| p.is_dir()) {
        None => None,
        Some(dir) => {
            let Some(k) = a.folds else {
                return Err(Error::Invalid(format!(
                    "--init {}: a folder only makes sense with --folds (fold K starts from its fold-K/model.onnx); give a model file for a single run",
                    dir.display()
                )));
            };
            Some((dir, init_folder_held_out("--init", dir, k as usize)?))
        }
    };
    // Read before the data, so a bad file fails at once; a folder's fold models are read per fold.
    let single_init = match &a.init {
        Some(path) if init_folds.is_none() => Some(read_init(path, &arch, a.seed)?),
        _ => None,
    };
    let names: Vec<String> = a.manifest.iter().map(|m| m.display().to_string()).collect();
    eprintln!("reading {}", names.join(", "));
    let jitter = a
        .corner_jitter
        .map(|fraction| endplate::train::CornerJitter {
            fraction,
            copies: a.jitter_copies as usize,
            seed: a.seed,
        });
    if let Some(j) = jitter {
        eprintln!(
            "cutting {} more ROIs of every disc with its corners moved (sd {} of its width)",
            j.copies, j.fraction
        );
    }
    let auxiliary = endplate::train::dataset::auxiliary_targets(&a.manifest, &a.auxiliary)?;
    let mut data = Dataset::load_jittered(&a.manifest, &endplate::RoiParams::default(), jitter)?;
    data.auxiliary = auxiliary;
    if !a.auxiliary.is_empty() {
        eprintln!(
            "auxiliary targets (weight {}): {}",
            a.auxiliary_weight,
            a.auxiliary
                .iter()
                .enumerate()
                .map(|(c, name)| format!(
                    "{name} on {} discs",
                    data.auxiliary.iter().filter(|t| t[c].is_some()).count()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (name, c) in names.iter().zip(data.counts()) {
        eprintln!(
            "{name}: {} labelled discs (normal {}, wavy {}, notched {}, schmorl {}, lesion of unknown type {})",
            c.iter().sum::<usize>(),
            c[0],
            c[1],
            c[2],
            c[3],
            c[4]
        );
    }
    let unfold = |(w, desc, folded): (endplate::model::resnet::Weights, String, bool)| {
        if !folded {
            return Ok((w, desc));
        }
        eprintln!("unfolding the init model's BatchNorms and measuring their statistics on 256 of the discs (images only)");
        let w =
            endplate::train::unfold_for_training(&w, &arch, &data)?.expect("checked on reading");
        Ok::<_, Error>((w, desc))
    };
    // No weights here when each fold reads its own from the init folder.
    let (init, init_desc) = match (single_init, &init_folds) {
        (Some(i), _) => {
            let (w, desc) = unfold(i)?;
            (Some(w), desc)
        }
        (None, Some((dir, held))) => {
            if !data
                .subjects
                .iter()
                .any(|s| held.iter().any(|h| h.contains(s)))
            {
                eprintln!(
                    "warning: none of this run's subjects appear in {}'s predictions (manifests named by other paths?), so its fold models cannot be checked for patients that the folds here hold out",
                    dir.display()
                );
            }
            (
                None,
                format!("{}/fold-K/model.onnx for fold K", dir.display()),
            )
        }
        (None, None) => (
            Some(arch.random_weights(a.seed)),
            format!("random Kaiming init (seed {})", a.seed),
        ),
    };
    let config = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        patience: a.patience,
        seed: a.seed,
        unfreeze: match a.unfreeze.as_str() {
            "all" => Unfreeze::All,
            "progressive" => Unfreeze::Progressive,
            top => Unfreeze::Top(top[3..].parse().expect("clap checked top0..top4")),
        },
        split_by_subject: a.split_by == "subject",
        data_description: if a.describe.is_empty() {
            format!("{} ({} discs)", names.join(" + "), data.rois.len())
        } else {
            a.describe.clone()
        },
        synthetic: a.synthetic,
        init: init_desc,
        keep_last: a.keep_last,
        corner_jitter: jitter,
        source_shares: a.share.clone(),
        lr_schedule: if a.lr_schedule == "cosine" {
            endplate::train::LrSchedule::Cosine
        } else {
            endplate::train::LrSchedule::Plateau
        },
        auxiliary: a.auxiliary.clone(),
        auxiliary_weight: a.auxiliary_weight,
        mirror_average: a.mirror_average,
        no_validation_of: a.no_validation_of.iter().map(|&m| m as usize - 1).collect(),
        augment: endplate::train::augment::Augment {
            max_scale: a.augment_scale,
            max_gamma: a.augment_gamma,
            max_contrast: a.augment_contrast,
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let Some(k) = a.folds else {
        let init = init.expect("an init folder without --folds was refused above");
        if let Some((dir, held)) = &calibration_folds {
            for f in 0..held.len() {
                let cfg = TrainConfig {
                    fold: Some(train::Fold {
                        index: f,
                        of: held.len(),
                    }),
                    no_validation_of: Vec::new(),
                    ..config.clone()
                };
                refuse_learnt_held_out("--calibrate-on-folds", dir, held, f, &data, &cfg)?;
            }
        }
        let folds = calibration_folds
            .as_ref()
            .map(|(dir, held)| (*dir, held.len()));
        let (bytes, _) = train_and_report(&data, config, init, &ckpt, a.resume, &report, folds)?;
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
        let (fold_init, cfg) = match (&init_folds, &init) {
            (Some((dir, held)), _) => {
                refuse_learnt_held_out("--init", dir, held, f, &data, &cfg)?;
                let (w, desc) = unfold(read_init(
                    &dir.join(&name).join("model.onnx"),
                    &arch,
                    a.seed,
                )?)?;
                (w, TrainConfig { init: desc, ..cfg })
            }
            (None, Some(w)) => (w.clone(), cfg),
            (None, None) => unreachable!("weights are read unless an init folder gives them"),
        };
        let (bytes, metrics) = train_and_report(
            &data,
            cfg,
            fold_init,
            &fold_ckpt,
            resume,
            &fold_report,
            None,
        )?;
        if train::STOP.load(std::sync::atomic::Ordering::Relaxed) {
            // A fold cut short is not done: without its model.onnx, --resume trains it on from
            // its checkpoint instead of keeping a half-trained fold's figures.
            return Err(Error::Invalid(format!(
                "stopped during {name}; --resume continues from there"
            )));
        }
        endplate::files::write_atomic(&fold_model, &bytes)?;
        folds.push(metrics);
    }
    let mut cv = endplate::eval::metrics::cross_validation(&folds);
    let pooled = pooled_predictions(&report, k)?;
    if pooled.0.iter().any(|l| l.is_lesion()) && pooled.0.iter().any(|l| !l.is_lesion()) {
        let (truth, probs, subjects) = pooled;
        // Resampled by person, as the split keeps them: a patient's discs in two manifests
        // (lumbar and thoracic) are one draw.
        let subjects: Vec<String> = subjects
            .iter()
            .map(|s| endplate::train::dataset::person(s, &data.source_names).to_string())
            .collect();
        let lesion: Vec<bool> = truth.iter().map(|l| l.is_lesion()).collect();
        let p: Vec<f64> = probs.iter().map(|p| 1.0 - p[0] as f64).collect();
        cv["lesion_vs_normal_pooled"] = serde_json::to_value(endplate::eval::lesion::evaluate(
            &lesion, &p, &subjects, 500, 1,
        ))
        .expect("json");
    }
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
    if cv["accuracy"]["folds"]
        .as_array()
        .is_some_and(|f| f.len() == k)
    {
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
    }
    for key in ["auc", "sensitivity", "specificity", "accuracy"] {
        line(&format!("lesion {key}"), &cv["lesion_vs_normal"][key]);
    }
    if let Some(p) = cv.get("lesion_vs_normal_pooled") {
        println!(
            "out-of-fold P(lesion) of all {} discs pooled: AUC {:.3} ({:.3}-{:.3}, bootstrap over {} subjects)",
            p["n"], p["auc"]["point"].as_f64().unwrap_or(f64::NAN), p["auc"]["lo"].as_f64().unwrap_or(f64::NAN),
            p["auc"]["hi"].as_f64().unwrap_or(f64::NAN), p["subjects"]
        );
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
    calibration_folds: Option<(&Path, usize)>,
) -> Result<(Vec<u8>, serde_json::Value)> {
    let arch = endplate::model::resnet::Architecture::resnet18(4);
    let mut trained = run_training("model", data, config, init, ckpt, resume)?;
    if let Some((dir, k)) = calibration_folds {
        // Loaded only now, so the fold models do not sit in memory through the training.
        let folds = (1..=k)
            .map(|f| {
                let path = fold_model_path(dir, f);
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                Classifier::from_bytes(&path.display().to_string(), &bytes)
            })
            .collect::<Result<Vec<_>>>()?;
        let fitted = endplate::train::fold_calibration::calibrate_on_folds(
            data,
            &trained.state.config,
            &folds,
        )?;
        eprintln!(
            "calibration fitted on the out-of-fold logits of {} discs ({} fold models)",
            fitted.discs,
            folds.len()
        );
        trained.card.calibration = fitted.calibration;
        trained.card.training.details["calibration"] = serde_json::json!({
            "fitted_on": "out-of-fold logits of a cross-validation of the same recipe: each fold model on the discs it held out",
            "discs": fitted.discs,
            "folds": folds.len(),
        });
    }
    // Metrics of the calibrated model on the validation set, into the card and the report.
    let probs: Vec<[f32; 4]> = trained
        .val_logits
        .iter()
        .map(|l| trained.card.calibration.probabilities(l))
        .collect();
    // With real binary-labelled discs among the sources, the figures that count are theirs: the
    // phantoms' collapsed four-class labels would blur the real lesion-vs-normal AUC. Each source
    // is reported on its own as well.
    let binary: Vec<bool> = (0..data.source_names.len())
        .map(|s| {
            data.labels
                .iter()
                .zip(&data.sources)
                .any(|(l, &src)| src == s && *l == Label::Lesion)
        })
        .collect();
    // Real discs that all train (`--no-validation-of`) leave the phantoms to report on.
    let real_validation =
        (0..trained.state.val.len()).any(|k| binary[data.sources[trained.state.val[k]]]);
    let primary: Vec<usize> = (0..trained.state.val.len())
        .filter(|&k| !real_validation || binary[data.sources[trained.state.val[k]]])
        .collect();
    let pick = |sel: &[usize]| {
        let subjects: Vec<String> = sel
            .iter()
            .map(|&k| data.subjects[trained.state.val[k]].clone())
            .collect();
        let truth: Vec<Label> = sel.iter().map(|&k| trained.val_truth[k]).collect();
        let p: Vec<[f32; 4]> = sel.iter().map(|&k| probs[k]).collect();
        (subjects, truth, p)
    };
    let (subjects, truth, primary_probs) = pick(&primary);
    let mut metrics =
        endplate::eval::labelled::evaluate_labelled(&truth, &primary_probs, &subjects, 500, 1);
    if data.source_names.len() > 1 {
        metrics["sources"] = data
            .source_names
            .iter()
            .enumerate()
            .filter(|(s, _)| !trained.state.config.no_validation_of.contains(s))
            .map(|(s, name)| {
                let sel: Vec<usize> = (0..trained.state.val.len())
                    .filter(|&k| data.sources[trained.state.val[k]] == s)
                    .collect();
                let (sub, t, p) = pick(&sel);
                serde_json::json!({"manifest": name, "metrics": endplate::eval::labelled::evaluate_labelled(&t, &p, &sub, 500, 1)})
            })
            .collect();
    }
    trained.card.metrics = metrics.clone();
    let mut with_history = metrics.clone();
    with_history["history"] = serde_json::to_value(&trained.state.history).expect("json");
    endplate::eval::report::write_labelled(
        report,
        &with_history,
        &truth,
        &primary_probs,
        &endplate::train::learning_curves(&trained.state.history),
    )?;
    write_predictions(&report.join(PREDICTIONS), &subjects, &truth, &primary_probs)?;
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

/// Each validation disc's calibrated probabilities (of the real binary-labelled sources where
/// there are any), in every report folder: the pooled out-of-fold figures of a
/// cross-validation are computed from these files.
const PREDICTIONS: &str = "predictions.csv";

fn write_predictions(
    path: &Path,
    subjects: &[String],
    truth: &[Label],
    probs: &[[f32; 4]],
) -> Result<()> {
    let mut text = String::from("subject,label,normal,wavy,notched,schmorl\n");
    for ((s, l), p) in subjects.iter().zip(truth).zip(probs) {
        text.push_str(&format!(
            "\"{}\",{},{},{},{},{}\n",
            s.replace('"', "\"\""),
            l.id(),
            p[0],
            p[1],
            p[2],
            p[3]
        ));
    }
    endplate::files::write_atomic(path, text.as_bytes())
}

/// Truth, calibrated probabilities and subject of held-out discs.
type Predictions = (Vec<Label>, Vec<[f32; 4]>, Vec<String>);

/// Weights to start from: the file's, with a fresh four-class head unless it is one of our
/// classifiers (whose head already knows the classes); its description for the card; and
/// whether its BatchNorms are folded (an endplate model), to be unfolded once discs are read.
fn read_init(
    path: &Path,
    arch: &endplate::model::resnet::Architecture,
    seed: u64,
) -> Result<(endplate::model::resnet::Weights, String, bool)> {
    // Read once: the bytes are hashed for the card as well.
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let name = path.display().to_string();
    let proto = endplate::model::file::parse_proto(&name, &bytes)?;
    let proto = endplate::model::storage::widen_stored_weights(proto);
    let mut w = endplate::model::file::read_initializers(&name, &proto)?;
    let ours = endplate::model::file::read_card(&name, &proto).is_ok_and(|c| c.classes.len() == 4);
    if !ours {
        let fresh = arch.random_weights(seed);
        for k in ["fc.weight", "fc.bias"] {
            w.insert(k.into(), fresh[k].clone());
        }
    }
    let folded = arch.check(&w).is_err();
    if folded && endplate::model::resnet::unfold_batchnorm(&w, arch).is_none() {
        arch.check(&w).map_err(|e| {
            Error::model(
                path.display(),
                format!("neither a torchvision ResNet18 nor an endplate model: {e}"),
            )
        })?;
    }
    let desc = format!(
        "{}{} (sha256 {:x})",
        path.display(),
        if ours { ", head kept" } else { "" },
        <sha2::Sha256 as sha2::Digest>::digest(&bytes)
    );
    Ok((w, desc, folded))
}

/// `--calibrate-on-folds`' folder and the subjects each of its folds held out.
type CalibrationFolds<'a> = (&'a Path, Vec<BTreeSet<String>>);

/// Where a cross-validation report folder keeps fold `f`'s model (1-based).
fn fold_model_path(dir: &Path, f: usize) -> std::path::PathBuf {
    dir.join(format!("fold-{f}/model.onnx"))
}

/// `--calibrate-on-folds`' folder and the subjects each of its folds held out, checked before
/// the data are read so a bad folder fails at once (the fold models themselves are loaded after
/// the training, in [`train_and_report`]). Refuses the flags' misuses with the fix:
/// --no-validation-of without it, either with --folds, a manifest number past the last, and
/// fold models averaged with their mirror images when this run is not (or the reverse), whose
/// logits would not be this model's kind.
fn check_calibration_folds(a: &TrainArgs) -> Result<Option<CalibrationFolds<'_>>> {
    if let Some(&m) = a
        .no_validation_of
        .iter()
        .find(|&&m| m as usize > a.manifest.len())
    {
        return Err(Error::Invalid(format!(
            "--no-validation-of {m}: there are {} --manifest files; give the position of one (1 = the first)",
            a.manifest.len()
        )));
    }
    let Some(dir) = a.calibrate_on_folds.as_deref() else {
        if a.no_validation_of.is_empty() {
            return Ok(None);
        }
        return Err(Error::Invalid(
            "--no-validation-of leaves those discs out of the validation set that calibrates the model; add --calibrate-on-folds DIR, a cross-validation of the same recipe (train --folds 5 --report DIR)".into(),
        ));
    };
    if a.folds.is_some() {
        return Err(Error::Invalid(
            "--calibrate-on-folds and --no-validation-of make one final model; leave out --folds"
                .into(),
        ));
    }
    let k = (1..)
        .take_while(|f| dir.join(format!("fold-{f}")).is_dir())
        .count();
    if k < 2 {
        return Err(Error::Invalid(format!(
            "--calibrate-on-folds {}: no fold-1, fold-2, … folders there; give the --report folder of a finished cross-validation (train --folds K)",
            dir.display()
        )));
    }
    let held = init_folder_held_out("--calibrate-on-folds", dir, k)?;
    for f in 1..=k {
        // The card alone: parsing, not tract's optimisation of five networks.
        let path = fold_model_path(dir, f);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let name = path.display().to_string();
        let card = endplate::model::file::read_card(
            &name,
            &endplate::model::file::parse_proto(&name, &bytes)?,
        )?;
        if card.mirror_average != a.mirror_average {
            return Err(Error::Invalid(format!(
                "--calibrate-on-folds: {name} {} each disc with its mirror image and this run {}; calibrate on folds that run as this model will ({})",
                if card.mirror_average { "averages" } else { "does not average" },
                if a.mirror_average { "does" } else { "does not" },
                if a.mirror_average { "resume that cross-validation with --mirror-average into a new --report folder" } else { "add --mirror-average" }
            )));
        }
    }
    Ok(Some((dir, held)))
}

/// The subjects each fold of an earlier cross-validation held out (its `predictions.csv`), after
/// checking that every fold left its model: what [`refuse_learnt_held_out`] needs.
fn init_folder_held_out(option: &str, dir: &Path, k: usize) -> Result<Vec<BTreeSet<String>>> {
    (1..=k)
        .map(|f| {
            let fold = dir.join(format!("fold-{f}"));
            let model = fold_model_path(dir, f);
            if !model.is_file() {
                return Err(Error::Invalid(format!(
                    "{option} {}: {} is missing; the folder must hold a finished {k}-fold cross-validation (train --folds {k} --report {})",
                    dir.display(),
                    model.display(),
                    dir.display()
                )));
            }
            let (_, _, subjects) = fold_predictions(&fold)?;
            Ok(subjects.into_iter().collect())
        })
        .collect()
}

/// Refuse to start fold `f` from `dir`'s fold model if that model learnt a subject this fold
/// holds out: the subjects `dir`'s other folds held out (`held`) are the ones its fold-`f` model
/// trained on. Subjects it never saw (phantoms added in this stage) are fine.
fn refuse_learnt_held_out(
    option: &str,
    dir: &Path,
    held: &[BTreeSet<String>],
    f: usize,
    data: &endplate::train::Dataset,
    cfg: &endplate::train::TrainConfig,
) -> Result<()> {
    let learnt = |s: &String| {
        held.iter()
            .enumerate()
            .any(|(g, h)| g != f && h.contains(s))
    };
    let (_, val) = endplate::train::split_discs(data, cfg);
    match val.iter().map(|&i| &data.subjects[i]).find(|s| learnt(s)) {
        Some(s) => Err(Error::Invalid(format!(
            "{option} {}: its fold-{} model was trained on {s}, whom fold {} holds out here; give the same manifests, --seed and --split-by as that cross-validation (and --folds, for --init)",
            dir.display(),
            f + 1,
            f + 1
        ))),
        None => Ok(()),
    }
}

/// The held-out predictions of all `k` folds.
fn pooled_predictions(report: &Path, k: usize) -> Result<Predictions> {
    let (mut truth, mut probs, mut subjects) = (Vec::new(), Vec::new(), Vec::new());
    for f in 0..k {
        let (t, p, s) = fold_predictions(&report.join(format!("fold-{}", f + 1)))?;
        truth.extend(t);
        probs.extend(p);
        subjects.extend(s);
    }
    Ok((truth, probs, subjects))
}

/// One fold's held-out discs as its report wrote them: labels, probabilities and subjects.
fn fold_predictions(fold: &Path) -> Result<Predictions> {
    let (mut truth, mut probs, mut subjects) = (Vec::new(), Vec::new(), Vec::new());
    let path = fold.join(PREDICTIONS);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let bad = |line: usize, why: String| Error::Manifest {
        file: path.display().to_string(),
        row: line,
        field: "row".into(),
        reason: why,
    };
    for (i, rec) in csv::Reader::from_reader(text.as_bytes())
        .records()
        .enumerate()
    {
        let rec = rec.map_err(|e| bad(i + 2, e.to_string()))?;
        let p: Vec<f32> = (2..6)
            .map(|c| rec.get(c).and_then(|v| v.parse().ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(i + 2, "four probabilities expected".into()))?;
        subjects.push(rec.get(0).unwrap_or("").to_string());
        truth.push(rec.get(1).unwrap_or("").parse::<Label>()?);
        probs.push([p[0], p[1], p[2], p[3]]);
    }
    Ok((truth, probs, subjects))
}

pub fn run_pretrain(a: PretrainArgs) -> Result<()> {
    use endplate::train::{self, TrainConfig, Unfreeze};
    let (data, skipped) =
        train::Dataset::load_pretext(&a.manifest, a.max_discs, &RoiParams::default())?;
    for s in &skipped {
        eprintln!("left out {s}");
    }
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
