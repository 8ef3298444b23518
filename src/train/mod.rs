//! Fine-tuning after the paper (section 2.2): stratified 80/20 split, weighted random sampler,
//! on-the-fly augmentation, batch 32, learning rate 1e-3 divided by ten after 10 epochs without
//! validation improvement, progressive unfreezing, then Platt calibration on the validation set
//! and the model written with its card. Runs on burn's pure-Rust `flex` CPU backend on all cores.
//!
//! Stage 6, train: owns the training loop (here) and the pieces only training uses: the data
//! ([`dataset`]), the run's settings and unfreezing schedule ([`schedule`]), checkpoints and
//! resume ([`checkpoint`]), the sampler, the plateau rule, the splits, the augmentation and the
//! burn network. May use every earlier stage (`manifest`, `model`, `eval`, `disc`, `image`);
//! nothing in the library uses it. Behind the `train` feature, so the wasm build never
//! compiles burn.

pub mod augment;
pub mod checkpoint;
pub mod dataset;
pub mod detector;
pub mod detector_data;
pub mod detector_views;
pub mod network;
pub mod plateau;
pub mod sampler;
pub mod schedule;
pub mod split;

pub use checkpoint::{checkpoint_state_path, EpochLog, RunState};
pub use dataset::Dataset;
pub use schedule::{stages_open, Fold, TrainConfig, Unfreeze};

use crate::class::Class;
use crate::disc::roi::{network_input, Roi, RoiParams};
use crate::error::{Error, Result};
use crate::model::calibration::Calibration;
use crate::model::card::{ModelCard, Training, CARD_VERSION, PHANTOM_WARNING};
use crate::model::file::{write_model, BatchNorm};
use crate::model::inference::rows_of_four;
use crate::model::resnet::{Architecture, Weights};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use checkpoint::{load_checkpoint, save_checkpoint};
use network::ResNet18;
use plateau::ReduceOnPlateau;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use sampler::WeightedSampler;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Progress reporting, so the library stays free of terminal code.
pub trait Progress {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, accuracy: f64, lr: f64);
    fn epoch(&mut self, log: &EpochLog);
}

/// Set from a Ctrl-C handler: the run stops after the current batch and keeps the best model.
pub static STOP: AtomicBool = AtomicBool::new(false);

fn batch_tensor(rois: &[&Roi], p: &RoiParams, device: &Device) -> Tensor<4> {
    let data = network_input(rois.iter().copied(), p);
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

    let (mut state, weights, mut best) = if resume {
        load_checkpoint(checkpoint_dir, &data.hash)?
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
    let mut optim = checkpoint::adam(
        checkpoint_dir,
        state.optimizer_file.as_deref().filter(|_| resume),
    )?;
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
