//! Fine-tuning after the paper (section 2.2): stratified 80/20 split, weighted random sampler,
//! on-the-fly augmentation, batch 32, learning rate 1e-3 divided by ten after 10 epochs without
//! validation improvement, progressive unfreezing, then Platt calibration on the validation set
//! and the model written with its card. Runs on burn's pure-Rust `flex` CPU backend on all cores.
//!
//! Stage 6, train: owns the training loop and the pieces only training uses (the sampler, the
//! plateau schedule, the splits, the augmentation, the burn network). May use every earlier
//! stage (`manifest`, `model`, `eval`, `disc`, `image`); nothing in the library uses it. Behind
//! the `train` feature, so the wasm build never compiles burn.

pub mod augment;
pub mod network;
pub mod plateau;
pub mod sampler;
pub mod split;

use crate::class::Class;
use crate::disc::roi::{Roi, RoiParams};
use crate::error::{Error, Result};
use crate::image::decode::DecodeOptions;
use crate::model::calibration::Calibration;
use crate::model::card::{ModelCard, Training, CARD_VERSION, PHANTOM_WARNING};
use crate::model::file::{write_model, BatchNorm};
use crate::model::inference::rows_of_four;
use crate::model::resnet::{Architecture, Weights};
use augment::Augment;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, OptimizerRecord};
use burn::tensor::{Device, Int, Tensor, TensorData};
use network::ResNet18;
use plateau::ReduceOnPlateau;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use sampler::WeightedSampler;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Labelled discs, preprocessed once.
pub struct Dataset {
    pub rois: Vec<Roi>,
    pub classes: Vec<Class>,
    pub subjects: Vec<String>,
    /// SHA-256 of the manifest and every image it names.
    pub hash: String,
}

impl Dataset {
    /// Decode every image of a manifest once and cut every labelled disc's ROI. Unlabelled rows
    /// are skipped with a count.
    pub fn load(manifest: &Path, p: &RoiParams) -> Result<Dataset> {
        let mut hasher = Sha256::new();
        let (labelled, rois) = read_discs(manifest, p, &mut hasher, |rows| {
            rows.retain(|r| r.label.is_some())
        })?;
        if rois.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no labelled rows to learn from",
                manifest.display()
            )));
        }
        Ok(Dataset {
            classes: labelled
                .iter()
                .map(|r| r.label.expect("labelled"))
                .collect(),
            subjects: labelled.iter().map(|r| r.subject.clone()).collect(),
            rois,
            hash: format!("{:x}", hasher.finalize()),
        })
    }

    /// The self-supervised pretext set ([`rotation_pretext`]) of the discs of several manifests,
    /// labelled or not, at most `max_discs` (the first rows) of each. Subjects are kept apart per
    /// manifest, so the by-subject split never mixes two data sets' "subject 1".
    pub fn load_pretext(
        manifests: &[PathBuf],
        max_discs: Option<usize>,
        p: &RoiParams,
    ) -> Result<Dataset> {
        let mut hasher = Sha256::new();
        let (mut rois, mut subjects) = (Vec::new(), Vec::new());
        for m in manifests {
            let (rows, r) = read_discs(m, p, &mut hasher, |rows| {
                rows.truncate(max_discs.unwrap_or(usize::MAX))
            })?;
            rois.extend(r);
            subjects.extend(
                rows.iter()
                    .map(|r| format!("{}:{}", m.display(), r.subject)),
            );
        }
        Ok(rotation_pretext(
            &rois,
            &subjects,
            &format!("{:x}", hasher.finalize()),
        ))
    }
}

/// The self-supervised pretext data set: every ROI in its four quarter turns, labelled by the
/// turn (class index k = k quarter turns, reusing the four-way head). A network that can tell
/// which way up a disc region is must learn endplates, vertebral bodies, the disc and the CSF
/// side, which is what the lesion task needs too, and it needs no lesion labels: unlabelled
/// phantoms and real slices both serve.
fn rotation_pretext(rois: &[Roi], subjects: &[String], source_hash: &str) -> Dataset {
    let mut out = Dataset {
        rois: Vec::with_capacity(4 * rois.len()),
        classes: Vec::with_capacity(4 * rois.len()),
        subjects: Vec::with_capacity(4 * rois.len()),
        hash: format!("{:x}", Sha256::digest(format!("rotation:{source_hash}"))),
    };
    for (roi, subject) in rois.iter().zip(subjects) {
        for (k, class) in Class::ALL.iter().enumerate() {
            out.rois.push(augment::quarter_turns(roi, k));
            out.classes.push(*class);
            out.subjects.push(subject.clone());
        }
    }
    out
}

/// The rows of a manifest that `select` keeps, and their ROIs; the manifest text and every image
/// read go into `hasher`, so a model's card can name exactly what it learnt from.
fn read_discs(
    manifest: &Path,
    p: &RoiParams,
    hasher: &mut Sha256,
    select: impl FnOnce(&mut Vec<crate::manifest::Row>),
) -> Result<(Vec<crate::manifest::Row>, Vec<Roi>)> {
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    hasher.update(text.as_bytes());
    let mut rows = crate::manifest::parse(&manifest.display().to_string(), &text)?;
    select(&mut rows);
    let base = manifest.parent().unwrap_or(Path::new("."));
    let rois = crate::manifest::rois(&rows, base, DecodeOptions::default(), p, |b| {
        hasher.update(b)
    })?;
    Ok((rows, rois))
}

/// Which stages learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Unfreeze {
    /// The paper's progressive unfreezing: see [`stages_open`].
    Progressive,
    /// Everything from the first epoch (the right choice when training from scratch).
    All,
}

/// Progressive schedule: the head alone for the first 5 % of epochs, then layer4 (to 15 %),
/// layer3 (to 30 %), layer2 (to 50 %), layer1 (to 70 %), and the stem for the rest — each step
/// longer than the last, as the paper describes.
pub fn stages_open(unfreeze: Unfreeze, epoch: usize, epochs: usize) -> usize {
    if unfreeze == Unfreeze::All {
        return 5;
    }
    let f = epoch as f64 / epochs.max(1) as f64;
    [0.05, 0.15, 0.30, 0.50, 0.70]
        .iter()
        .filter(|&&t| f >= t)
        .count()
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub patience: usize,
    pub seed: u64,
    pub unfreeze: Unfreeze,
    pub augment: Augment,
    pub split_by_subject: bool,
    /// Description of the data for the card.
    pub data_description: String,
    pub synthetic: bool,
    pub init: String,
    /// Hold out this fold instead of the 80/20 split (K-fold cross-validation).
    #[serde(default)]
    pub fold: Option<Fold>,
}

/// Fold `index` of `of` is the validation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fold {
    pub index: usize,
    pub of: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch: 32,
            lr: 1e-3,
            patience: 10,
            seed: 1,
            unfreeze: Unfreeze::Progressive,
            augment: Augment::default(),
            split_by_subject: false,
            data_description: String::new(),
            synthetic: false,
            init: "random (Kaiming)".into(),
            fold: None,
        }
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub stages_open: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// What a checkpoint holds besides the weights: enough to continue the run where it stopped.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    pub config: TrainConfig,
    pub next_epoch: usize,
    pub plateau: ReduceOnPlateau,
    pub best_val_loss: f64,
    pub best_epoch: usize,
    pub history: Vec<EpochLog>,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub data_hash: String,
    /// The epoch's weights and Adam state, named by epoch inside the checkpoint folder. This
    /// file is written last, so a run killed mid-checkpoint resumes from the previous epoch
    /// with a matching pair.
    #[serde(default)]
    pub weights_file: String,
    #[serde(default)]
    pub optimizer_file: Option<String>,
}

/// Progress reporting, so the library stays free of terminal code.
pub trait Progress {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, accuracy: f64, lr: f64);
    fn epoch(&mut self, log: &EpochLog);
}

/// Set from a Ctrl-C handler: the run stops after the current batch and keeps the best model.
pub static STOP: AtomicBool = AtomicBool::new(false);

fn batch_tensor(rois: &[&Roi], p: &RoiParams, device: &Device) -> Tensor<4> {
    let data = crate::disc::roi::network_input(rois.iter().copied(), p);
    Tensor::from_data(
        TensorData::new(data, [rois.len(), 3, p.size, p.size]),
        device,
    )
}

fn targets(classes: &[Class], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = classes.iter().map(|c| c.index() as i64).collect();
    Tensor::from_data(TensorData::new(data, [classes.len()]), device)
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float")[0] as f64
}

/// Logits of `idx` in eval mode, batched.
pub fn predict(
    model: &ResNet18,
    data: &Dataset,
    idx: &[usize],
    p: &RoiParams,
    device: &Device,
) -> Vec<[f32; 4]> {
    let model = model.valid();
    let mut out = Vec::with_capacity(idx.len());
    for chunk in idx.chunks(64) {
        let rois: Vec<&Roi> = chunk.iter().map(|&i| &data.rois[i]).collect();
        let logits = model.forward(batch_tensor(&rois, p, &device.clone().inner()));
        let v = logits
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("float");
        out.extend(rows_of_four(&v));
    }
    out
}

fn cross_entropy(logits: &[[f32; 4]], truth: &[Class]) -> f64 {
    logits
        .iter()
        .zip(truth)
        .map(|(l, t)| {
            let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = m + l.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            lse - l[t.index()] as f64
        })
        .sum::<f64>()
        / logits.len().max(1) as f64
}

/// The share of discs whose top logit is the true class.
pub fn accuracy(logits: &[[f32; 4]], truth: &[Class]) -> f64 {
    let ok = logits
        .iter()
        .zip(truth)
        .filter(|(l, t)| Class::argmax(l) == **t)
        .count();
    ok as f64 / logits.len().max(1) as f64
}

/// The run state of a checkpoint folder; it names the epoch's weight and optimizer files.
pub fn checkpoint_state_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.json")
}

/// Write the epoch's weights and Adam state under epoch-tagged names, then the run state that
/// names them (atomically, last), then remove the previous epoch's pair.
fn save_checkpoint(
    dir: &Path,
    state: &mut RunState,
    weights: &Weights,
    optim: &burn::optim::ModuleOptimizer,
    arch: &Architecture,
) -> Result<()> {
    let previous = (state.weights_file.clone(), state.optimizer_file.clone());
    let tag = format!("epoch-{:03}", state.next_epoch);
    state.weights_file = format!("{tag}.onnx");
    let optimizer_file = format!("{tag}.adam.bpk");
    let card = ModelCard::untrained("checkpoint", state.config.seed);
    crate::files::write_atomic(
        &dir.join(&state.weights_file),
        &write_model(arch, weights, &card, BatchNorm::Keep)?,
    )?;
    let bytes = optim
        .to_record()
        .into_bytes()
        .map_err(|e| Error::Invalid(format!("optimizer state: {e:?}")))?;
    crate::files::write_atomic(&dir.join(&optimizer_file), &bytes)?;
    state.optimizer_file = Some(optimizer_file);
    crate::files::write_atomic(
        &checkpoint_state_path(dir),
        serde_json::to_string_pretty(state)
            .expect("json")
            .as_bytes(),
    )?;
    for old in [Some(previous.0), previous.1].into_iter().flatten() {
        if !old.is_empty()
            && Some(&old) != state.optimizer_file.as_ref()
            && old != state.weights_file
        {
            let _ = std::fs::remove_file(dir.join(old));
        }
    }
    Ok(())
}

/// Learning curves of a run as SVG charts for the report folder: loss and accuracy per epoch,
/// training (on augmented, resampled draws) against validation.
pub fn learning_curves(history: &[EpochLog]) -> Vec<(&'static str, String)> {
    use crate::eval::plot::{line_chart, Series};
    let line = |name: &str, f: fn(&EpochLog) -> f64| {
        Series::new(
            name,
            history
                .iter()
                .map(|l| ((l.epoch + 1) as f64, f(l)))
                .collect(),
        )
    };
    let chart = |file, title, y, train: fn(&EpochLog) -> f64, val: fn(&EpochLog) -> f64, range| {
        let series = [line("training", train), line("validation", val)];
        (file, line_chart(title, "epoch", y, &series, None, range))
    };
    vec![
        chart(
            "learning_loss.svg",
            "Cross-entropy loss",
            "loss",
            |l| l.train_loss,
            |l| l.val_loss,
            None,
        ),
        chart(
            "learning_accuracy.svg",
            "Accuracy",
            "accuracy",
            |l| l.train_accuracy,
            |l| l.val_accuracy,
            Some((0.0, 1.0)),
        ),
    ]
}

/// The outcome of a run.
pub struct Trained {
    pub weights: Weights,
    pub card: ModelCard,
    pub state: RunState,
    pub val_logits: Vec<[f32; 4]>,
    pub val_truth: Vec<Class>,
    pub stopped_early: bool,
}

/// Train (or resume) a model. Checkpoints go to `checkpoint_dir` after every epoch.
pub fn train(
    data: &Dataset,
    config: TrainConfig,
    init: Weights,
    checkpoint_dir: &Path,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<Trained> {
    let arch = Architecture::resnet18(4);
    let p = RoiParams::default();
    let device = Device::flex().autodiff();
    let ckpt_state = checkpoint_state_path(checkpoint_dir);

    let (mut state, weights, mut best) = if resume {
        let text = std::fs::read_to_string(&ckpt_state).map_err(|e| {
            Error::Invalid(format!(
                "{}: {e}; nothing to resume there (drop --resume to start a run, or point --checkpoints at the run's folder)",
                ckpt_state.display()
            ))
        })?;
        let state: RunState = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", ckpt_state.display())))?;
        if state.data_hash != data.hash {
            return Err(Error::Invalid(format!(
                "{}: the checkpoint was trained on other data (hash {}), not this manifest ({}); resume with the run's own manifest, or start afresh in another --checkpoints folder",
                ckpt_state.display(),
                state.data_hash,
                data.hash
            )));
        }
        let ckpt_model = checkpoint_dir.join(&state.weights_file);
        let bytes = std::fs::read(&ckpt_model).map_err(|e| Error::io(&ckpt_model, e))?;
        let proto = crate::model::file::parse_proto(&ckpt_model.display().to_string(), &bytes)?;
        let w = crate::model::file::read_initializers("checkpoint", &proto)?;
        let best_path = checkpoint_dir.join("best.onnx");
        let best = std::fs::read(&best_path)
            .ok()
            .and_then(|b| crate::model::file::parse_proto("best", &b).ok())
            .and_then(|p| crate::model::file::read_initializers("best", &p).ok())
            .unwrap_or_else(|| w.clone());
        (state, w, best)
    } else {
        let classes: Vec<usize> = data.classes.iter().map(|c| c.index()).collect();
        let groups = config.split_by_subject.then_some(data.subjects.as_slice());
        let (train, val) = match config.fold {
            Some(f) => split::fold_split(&classes, groups, f.of, f.index, config.seed),
            None => split::train_validation(&classes, groups, config.seed),
        };
        let state = RunState {
            plateau: ReduceOnPlateau::new(config.lr, 0.1, config.patience),
            config: config.clone(),
            next_epoch: 0,
            best_val_loss: f64::INFINITY,
            best_epoch: 0,
            history: Vec::new(),
            train,
            val,
            data_hash: data.hash.clone(),
            weights_file: String::new(),
            optimizer_file: None,
        };
        (state, init.clone(), init)
    };
    let config = state.config.clone();
    if state.train.is_empty() || state.val.is_empty() {
        return Err(Error::Invalid(format!(
            "need discs on both sides of the split: {} training, {} validation",
            state.train.len(),
            state.val.len()
        )));
    }
    let mut model = ResNet18::from_weights(&arch, &weights, &device)?;
    let mut optim = AdamConfig::new().init();
    if let Some(file) = state.optimizer_file.as_ref().filter(|_| resume) {
        let path = checkpoint_dir.join(file);
        let record = OptimizerRecord::load(&path)
            .map_err(|e| Error::Invalid(format!("{}: {e:?}", path.display())))?;
        optim = optim.load_record(record);
    }
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let train_classes: Vec<usize> = state
        .train
        .iter()
        .map(|&i| data.classes[i].index())
        .collect();
    let sampler = WeightedSampler::inverse_class_frequency(&train_classes);
    let val_truth: Vec<Class> = state.val.iter().map(|&i| data.classes[i]).collect();
    let mut stopped = false;

    for epoch in state.next_epoch..config.epochs {
        let start = std::time::Instant::now();
        let open = stages_open(config.unfreeze, epoch, config.epochs);
        model = model.with_trainable_stages(open);
        // Each epoch's draws and augmentations come from its own seed: a resumed run repeats them.
        let mut rng = SmallRng::seed_from_u64(
            config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(epoch as u64),
        );
        let draws: Vec<usize> = sampler
            .draw(state.train.len(), &mut rng)
            .into_iter()
            .map(|k| state.train[k])
            .collect();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let total = draws.len();
        for chunk in draws.chunks(config.batch.max(1)) {
            let augmented: Vec<Roi> = chunk
                .iter()
                .map(|&i| config.augment.apply(&data.rois[i], p.pad_value, &mut rng))
                .collect();
            let refs: Vec<&Roi> = augmented.iter().collect();
            let truth: Vec<Class> = chunk.iter().map(|&i| data.classes[i]).collect();
            let logits = model.forward(batch_tensor(&refs, &p, &device));
            let loss = loss_fn.forward(logits.clone(), targets(&truth, &device));
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(state.plateau.lr, model, grads);
            let l = scalar(loss.inner());
            let v = logits
                .inner()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("float");
            let batch_logits = rows_of_four(&v);
            correct += (accuracy(&batch_logits, &truth) * truth.len() as f64).round() as usize;
            loss_sum += l * truth.len() as f64;
            seen += truth.len();
            progress.batch(
                epoch,
                seen,
                total,
                loss_sum / seen as f64,
                correct as f64 / seen as f64,
                state.plateau.lr,
            );
            if STOP.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
        let val_logits = predict(&model, data, &state.val, &p, &device);
        let val_loss = cross_entropy(&val_logits, &val_truth);
        let secs = start.elapsed().as_secs_f64();
        let log = EpochLog {
            epoch,
            lr: state.plateau.lr,
            stages_open: open,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy: accuracy(&val_logits, &val_truth),
            seconds: secs,
            images_per_second: seen as f64 / secs,
        };
        state.plateau.step(val_loss);
        let current = model.export(&arch);
        if val_loss < state.best_val_loss {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch;
            best = current.clone();
            let card = ModelCard::untrained("checkpoint-best", config.seed);
            crate::files::write_atomic(
                &checkpoint_dir.join("best.onnx"),
                &write_model(&arch, &best, &card, BatchNorm::Keep)?,
            )?;
        }
        progress.epoch(&log);
        state.history.push(log);
        state.next_epoch = epoch + 1;
        save_checkpoint(checkpoint_dir, &mut state, &current, &optim, &arch)?;
    }

    // Calibrate the best model on the validation set, in eval mode.
    let best_model = ResNet18::from_weights(&arch, &best, &device)?;
    let val_logits = predict(&best_model, data, &state.val, &p, &device);
    let calibration = Calibration::fit_platt(&val_logits, &val_truth)?;
    let card = ModelCard {
        format_version: CARD_VERSION,
        name: format!("endplate-resnet18-{}", &data.hash[..8]),
        classes: Class::ALL.iter().map(|c| c.id().to_string()).collect(),
        preprocessing: p,
        calibration,
        training: Training {
            data_description: config.data_description.clone(),
            data_hash: Some(data.hash.clone()),
            synthetic: config.synthetic,
            epochs: Some(state.next_epoch as u32),
            seed: Some(config.seed),
            init: config.init.clone(),
            code_version: crate::VERSION.into(),
            details: serde_json::json!({
                "split": {"train": state.train.len(), "validation": state.val.len(), "by_subject": config.split_by_subject, "stratified": true},
                "batch": config.batch, "lr": config.lr, "plateau": {"factor": 0.1, "patience": config.patience},
                "unfreeze": config.unfreeze, "sampler": "weighted random, inverse class frequency, with replacement",
                "augment": config.augment, "optimizer": "Adam", "best_epoch": state.best_epoch,
                "stopped_early": stopped,
            }),
        },
        metrics: serde_json::Value::Null,
        warning: config.synthetic.then(|| PHANTOM_WARNING.to_string()),
    };
    Ok(Trained {
        weights: best,
        card,
        state,
        val_logits,
        val_truth,
        stopped_early: stopped,
    })
}
