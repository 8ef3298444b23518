//! Fine-tuning after the paper (section 2.2): stratified 80/20 split, weighted random sampler,
//! on-the-fly augmentation, batch 32, learning rate 1e-3 divided by ten after 10 epochs without
//! validation improvement, progressive unfreezing, then Platt calibration on the validation set
//! and the model written with its card. Runs on burn's pure-Rust `flex` CPU backend on all cores
//! (or LibTorch's, with the `tch` feature: [`device`]).
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
pub mod fold_calibration;
pub mod network;
pub mod plateau;
pub mod sampler;
pub mod schedule;
pub mod split;

pub use checkpoint::{checkpoint_state_path, EpochLog, RunState};
pub use dataset::{CornerJitter, Dataset};
pub use schedule::{stages_open, Fold, LrSchedule, TrainConfig, Unfreeze};

use crate::class::{Class, Label};
use crate::disc::roi::{network_input, Roi, RoiParams};
use crate::error::{Error, Result};
use crate::model::calibration::Calibration;
use crate::model::card::{ModelCard, Training, CARD_VERSION, PHANTOM_WARNING};
use crate::model::file::{write_model, BatchNorm};
use crate::model::inference::{mirrored, rows_of_four};
use crate::model::resnet::{Architecture, WeightTensor, Weights};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
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

/// The device every training runs on: burn's pure-Rust `flex` backend, or with the `tch` feature
/// LibTorch's CPU backend, about three times faster here on a full ResNet18 step but only where
/// PyTorch's libraries are installed (DEVELOPERS.md, "Training on LibTorch"). Everything else,
/// the checkpoints and the model files included, is the same on both.
pub fn device() -> Device {
    // burn marks its LibTorch backend deprecated (CubeCL's CPU backend is to replace it, but it
    // downloads LLVM at build time and cannot be built offline here).
    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    {
        Device::libtorch()
    }
    #[cfg(not(feature = "tch"))]
    {
        Device::flex()
    }
}

/// Set from a Ctrl-C handler: the run stops after the current batch and keeps the best model.
pub static STOP: AtomicBool = AtomicBool::new(false);

fn batch_tensor(rois: &[&Roi], p: &RoiParams, device: &Device) -> Tensor<4> {
    input_tensor(
        network_input(rois.iter().copied(), p),
        rois.len(),
        p,
        device,
    )
}

/// `n` discs' network input (`[n, 3, size, size]` flattened) as a tensor.
fn input_tensor(input: Vec<f32>, n: usize, p: &RoiParams, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(input, [n, 3, p.size, p.size]), device)
}

/// Which classes each label admits, as a 0/1 matrix [N, 4]: one-hot for a class, every class
/// but normal for `lesion`.
fn admitted(labels: &[Label], device: &Device) -> Tensor<2> {
    let data: Vec<f32> = labels
        .iter()
        .flat_map(|l| Class::ALL.map(|c| if l.admits(c) { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_data(TensorData::new(data, [labels.len(), 4]), device)
}

/// Log-sum-exp over the classes, per row, stably.
fn log_sum_exp(x: Tensor<2>) -> Tensor<1> {
    let m = x.clone().max_dim(1).detach();
    let n = x.dims()[0];
    ((x - m.clone()).exp().sum_dim(1).log() + m).reshape([n])
}

/// Cross-entropy with a set of admitted classes per disc: −log Σ_{k admitted} softmax_k. For a
/// class label it is the usual cross-entropy; for `lesion` it is the binary cross-entropy of
/// P(normal) against 1 − P(normal), so a lesion of unknown type pushes probability away from
/// normal without saying which lesion class should get it.
fn label_set_loss(logits: Tensor<2>, admitted: Tensor<2>) -> Tensor<1> {
    // Classes outside the set get −1e4 added: exp of that is 0 in f32.
    let masked = logits.clone() + (admitted - 1.0) * 1e4;
    (log_sum_exp(logits) - log_sum_exp(masked)).mean()
}

/// Binary cross-entropy of each auxiliary output against its target, averaged over the
/// (disc, column) pairs whose target is known; `None` when the batch knows none (phantoms).
fn auxiliary_loss(
    outputs: Tensor<2>,
    targets: &[&[Option<f32>]],
    device: &Device,
) -> Option<Tensor<1>> {
    let [n, k] = outputs.dims();
    let cells = targets.iter().flat_map(|t| t.iter());
    let known: Vec<f32> = cells.clone().map(|t| t.map_or(0.0, |_| 1.0)).collect();
    let count: f32 = known.iter().sum();
    if count == 0.0 {
        return None;
    }
    let target: Vec<f32> = cells.map(|t| t.unwrap_or(0.0)).collect();
    let t = Tensor::<2>::from_data(TensorData::new(target, [n, k]), device);
    let known = Tensor::<2>::from_data(TensorData::new(known, [n, k]), device);
    let bce =
        -(t.clone() * log_sigmoid(outputs.clone()) + (t.neg() + 1.0) * log_sigmoid(outputs.neg()));
    Some((bce * known).sum() / count)
}

/// The head widened by `extra` outputs for the auxiliary targets, their weights drawn as a
/// fresh head's (uniform within ±1/√512), seeded; the four classes' rows stay as they are.
fn widen_head(mut w: Weights, extra: usize, seed: u64) -> Weights {
    if extra == 0 {
        return w;
    }
    let wider = Architecture::resnet18(4 + extra).random_weights(seed ^ 0xA0C5);
    for name in ["fc.weight", "fc.bias"] {
        let (old, new) = (&w[name], &wider[name]);
        let keep = old.data.len();
        let mut data = old.data.clone();
        data.extend_from_slice(&new.data[keep..]);
        w.insert(
            name.into(),
            WeightTensor {
                shape: new.shape.clone(),
                data,
            },
        );
    }
    w
}

/// The four classes' model inside a run's wider head: the auxiliary rows dropped.
fn class_head(mut w: Weights) -> Weights {
    for name in ["fc.weight", "fc.bias"] {
        let t = w.get_mut(name).expect("a ResNet18 has a head");
        let per_row: usize = t.shape[1..].iter().product();
        t.shape[0] = 4;
        t.data.truncate(4 * per_row);
    }
    w
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float")[0] as f64
}

/// Logits of `idx` in eval mode, batched; with `mirror`, the mean of each disc's logits and
/// its mirror image's, as a model card's `mirror_average` has the readers do.
pub fn predict(
    model: &ResNet18,
    data: &Dataset,
    idx: &[usize],
    p: &RoiParams,
    mirror: bool,
    device: &Device,
) -> Vec<[f32; 4]> {
    let model = model.valid();
    let device = device.clone().inner();
    let run = |input: Vec<f32>, n: usize| {
        model
            .forward(input_tensor(input, n, p, &device))
            .narrow(1, 0, 4)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("float")
    };
    let mut out = Vec::with_capacity(idx.len());
    for chunk in idx.chunks(64) {
        let input = network_input(chunk.iter().map(|&i| &data.rois[i]), p);
        let other = mirror.then(|| run(mirrored(&input, p.size), chunk.len()));
        let mut v = run(input, chunk.len());
        if let Some(other) = other {
            v.iter_mut()
                .zip(&other)
                .for_each(|(a, b)| *a = 0.5 * (*a + b));
        }
        out.extend(rows_of_four(&v));
    }
    out
}

/// [`label_set_loss`] on plain logits, for the validation pass.
fn cross_entropy(logits: &[[f32; 4]], truth: &[Label]) -> f64 {
    let lse = |l: &[f32; 4], keep: &dyn Fn(usize) -> bool| {
        let m = (0..4)
            .filter(|&k| keep(k))
            .map(|k| l[k] as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        m + (0..4)
            .filter(|&k| keep(k))
            .map(|k| (l[k] as f64 - m).exp())
            .sum::<f64>()
            .ln()
    };
    logits
        .iter()
        .zip(truth)
        .map(|(l, t)| lse(l, &|_| true) - lse(l, &|k| t.admits(Class::ALL[k])))
        .sum::<f64>()
        / logits.len().max(1) as f64
}

/// The share of discs whose top logit agrees with the label (for `lesion`: any class but
/// normal).
pub fn accuracy(logits: &[[f32; 4]], truth: &[Label]) -> f64 {
    let ok = logits
        .iter()
        .zip(truth)
        .filter(|(l, t)| t.admits(Class::argmax(l)))
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

/// Weights to fine-tune from, given those of a model file written with its BatchNorms folded
/// (the bundled model): unfolded, then every BatchNorm's statistics measured on up to 256 of
/// `data`'s discs (spread over the set), so training starts from the file's exact function with
/// statistics that fit the new data. `None` when `folded` is not a folded model of `arch`.
pub fn unfold_for_training(
    folded: &Weights,
    arch: &Architecture,
    data: &Dataset,
) -> Result<Option<Weights>> {
    let Some(unfolded) = crate::model::resnet::unfold_batchnorm(folded, arch) else {
        return Ok(None);
    };
    let device = device();
    let step = (data.rois.len() / 256).max(1);
    let rois: Vec<&Roi> = data.rois.iter().step_by(step).take(256).collect();
    let model = ResNet18::from_weights(arch, &unfolded, &device)?.restat_batchnorm(batch_tensor(
        &rois,
        &RoiParams::default(),
        &device,
    ));
    Ok(Some(model.export(arch)))
}

/// A run's training and validation discs (indices into `data`): the held-out fold, or the
/// paper's 80/20 split, stratified by label and drawn for each manifest on its own
/// ([`split::per_source`]); by subject, a person named in an earlier manifest stays on the side
/// that manifest's split gave them.
pub fn split_discs(data: &Dataset, config: &TrainConfig) -> (Vec<usize>, Vec<usize>) {
    let people: Vec<String> = data.people().into_iter().map(String::from).collect();
    let groups = config.split_by_subject.then_some(people.as_slice());
    let (mut train, val) = split::per_source(
        &data.strata(),
        groups,
        &data.sources,
        |strata, groups| match config.fold {
            Some(f) => split::fold_split(strata, groups, f.of, f.index, config.seed),
            None => split::train_validation(strata, groups, config.seed),
        },
    );
    // Drawn as usual first, so the other manifests' splits stay what they were.
    let (val, all): (Vec<usize>, Vec<usize>) = val
        .into_iter()
        .partition(|&i| !config.no_validation_of.contains(&data.sources[i]));
    train.extend(all);
    train.sort_unstable();
    (train, val)
}

/// The outcome of a run.
pub struct Trained {
    pub weights: Weights,
    pub card: ModelCard,
    pub state: RunState,
    pub val_logits: Vec<[f32; 4]>,
    pub val_truth: Vec<Label>,
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
    let extra = config.auxiliary.len();
    if extra > 0
        && (data.auxiliary.len() != data.rois.len()
            || data.auxiliary.iter().any(|t| t.len() != extra))
    {
        return Err(Error::Invalid(format!(
            "the run names auxiliary columns {:?} but the data carry targets for {} of its {} discs; fill Dataset::auxiliary from dataset::auxiliary_targets of the same manifests, in the same order",
            config.auxiliary,
            data.auxiliary.len(),
            data.rois.len()
        )));
    }
    // The head has one output per auxiliary column after the four classes while training;
    // the model written at the end keeps the four.
    let arch = Architecture::resnet18(4 + extra);
    let p = RoiParams::default();
    let device = device().autodiff();

    let (mut state, weights, mut best) = if resume {
        load_checkpoint(checkpoint_dir, &data.hash)?
    } else {
        let (train, val) = split_discs(data, &config);
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
        let init = widen_head(init, extra, config.seed);
        (state, init.clone(), init)
    };
    state.config.mirror_average = config.mirror_average;
    let config = state.config.clone();
    if state.train.is_empty() || state.val.is_empty() {
        return Err(Error::Invalid(format!(
            "need discs on both sides of the split: {} training, {} validation{}",
            state.train.len(),
            state.val.len(),
            if config.no_validation_of.is_empty() {
                ""
            } else {
                "; leave at least one manifest with validation discs (--no-validation-of names the ones without)"
            }
        )));
    }
    let mut model = ResNet18::from_weights(&arch, &weights, &device)?;
    let mut optim = checkpoint::adam(
        checkpoint_dir,
        state.optimizer_file.as_deref().filter(|_| resume),
    )?;
    if !config.source_shares.is_empty() && config.source_shares.len() != data.source_names.len() {
        return Err(Error::Invalid(format!(
            "{} source shares for {} manifests; give one per manifest, in the same order",
            config.source_shares.len(),
            data.source_names.len()
        )));
    }
    let sampler = WeightedSampler::balanced(
        &state
            .train
            .iter()
            .map(|&i| data.sources[i])
            .collect::<Vec<_>>(),
        &state
            .train
            .iter()
            .map(|&i| data.labels[i].key())
            .collect::<Vec<_>>(),
        &config.source_shares,
    );
    let val_truth: Vec<Label> = state.val.iter().map(|&i| data.labels[i]).collect();
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
        let batches = total.div_ceil(config.batch.max(1));
        let mut lr = state.plateau.lr;
        for (b, chunk) in draws.chunks(config.batch.max(1)).enumerate() {
            let done = (epoch * batches + b) as f64 / (config.epochs * batches).max(1) as f64;
            lr = config.lr_schedule.rate(state.plateau.lr, config.lr, done);
            let augmented: Vec<Roi> = chunk
                .iter()
                .map(|&i| {
                    let roi = data.draw_roi(i, &mut rng);
                    config.augment.apply(roi, p.pad_value, &mut rng)
                })
                .collect();
            let refs: Vec<&Roi> = augmented.iter().collect();
            let truth: Vec<Label> = chunk.iter().map(|&i| data.labels[i]).collect();
            let outputs = model.forward(batch_tensor(&refs, &p, &device));
            let logits = outputs.clone().narrow(1, 0, 4);
            let class_loss = label_set_loss(logits.clone(), admitted(&truth, &device));
            // The log's loss is the label's alone, comparable with runs without auxiliary columns.
            let l = scalar(class_loss.clone().inner());
            let mut loss = class_loss;
            if extra > 0 {
                let targets: Vec<&[Option<f32>]> = chunk
                    .iter()
                    .map(|&i| data.auxiliary[i].as_slice())
                    .collect();
                if let Some(aux) = auxiliary_loss(outputs.narrow(1, 4, extra), &targets, &device) {
                    loss = loss + aux * config.auxiliary_weight;
                }
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
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
                lr,
            );
            if STOP.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
        let val_logits = predict(&model, data, &state.val, &p, config.mirror_average, &device);
        let val_loss = cross_entropy(&val_logits, &val_truth);
        let secs = start.elapsed().as_secs_f64();
        let log = EpochLog {
            epoch,
            lr,
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
        if val_loss < state.best_val_loss || config.keep_last {
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
    let val_logits = predict(
        &best_model,
        data,
        &state.val,
        &p,
        config.mirror_average,
        &device,
    );
    let calibration = Calibration::fit_platt(&val_logits, &val_truth)?;
    let best = class_head(best);
    let card = ModelCard {
        format_version: CARD_VERSION,
        name: format!("endplate-resnet18-{}", &data.hash[..8]),
        classes: Class::ALL.iter().map(|c| c.id().to_string()).collect(),
        preprocessing: p,
        mirror_average: config.mirror_average,
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
                "split": {"train": state.train.len(), "validation": state.val.len(), "by_subject": config.split_by_subject, "stratified": true, "per_manifest": true},
                "batch": config.batch, "lr": config.lr, "plateau": {"factor": 0.1, "patience": config.patience}, "lr_schedule": config.lr_schedule,
                "unfreeze": config.unfreeze, "sampler": "weighted random, with replacement",
                "augment": config.augment, "optimizer": "Adam", "best_epoch": state.best_epoch,
                "kept": if config.keep_last { "last epoch" } else { "epoch of lowest validation loss" },
                "sources": data.source_names.iter().zip(data.counts()).map(|(name, c)| serde_json::json!({
                    "manifest": name, "normal": c[0], "wavy": c[1], "notched": c[2], "schmorl": c[3], "lesion": c[4]})).collect::<Vec<_>>(),
                "loss": "cross-entropy over the classes a label admits (lesion: binary cross-entropy of P(normal))",
                "sampler_balance": if config.source_shares.is_empty() {
                    "each manifest equally often, and within it each label equally often".to_string()
                } else {
                    format!("each manifest in proportion to its share {:?}, and within it each label equally often", config.source_shares)
                },
                "stopped_early": stopped,
                "auxiliary": (extra > 0).then(|| serde_json::json!({
                    "columns": config.auxiliary, "weight": config.auxiliary_weight,
                    "loss": "binary cross-entropy of one extra head output per column over the discs that have it; those outputs are dropped from the written model",
                    "known_training_discs": (0..extra).map(|c| state.train.iter().filter(|&&i| data.auxiliary[i][c].is_some()).count()).collect::<Vec<_>>(),
                })),
            }),
        },
        metrics: serde_json::Value::Null,
        warning: config.synthetic.then(|| PHANTOM_WARNING.to_string()),
        adaptation: serde_json::Value::Null,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auxiliary_loss_is_the_binary_cross_entropy_of_the_known_targets_only() {
        let device = Device::flex();
        let outputs = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 2.0, -1.0, 0.0], [2, 2]),
            &device,
        );
        let targets: [&[Option<f32>]; 2] = [&[Some(1.0), None], &[Some(0.0), Some(1.0)]];
        // ln 2 (0 against 1), ln(1 + e^-1) (-1 against 0), ln 2; the unknown cell adds nothing.
        let want = (2.0 * 2f64.ln() + (1.0 + (-1f64).exp()).ln()) / 3.0;
        let got = scalar(auxiliary_loss(outputs.clone(), &targets, &device).unwrap());
        assert!((got - want).abs() < 1e-5, "{got} against {want}");
        let none: [&[Option<f32>]; 2] = [&[None, None], &[None, None]];
        assert!(auxiliary_loss(outputs, &none, &device).is_none());
    }

    #[test]
    fn a_widened_head_keeps_the_class_rows_and_narrows_back_to_them() {
        let w = Architecture::resnet18(4).random_weights(5);
        let wide = widen_head(w.clone(), 3, 5);
        assert_eq!(wide["fc.weight"].shape, vec![7, 512]);
        assert_eq!(wide["fc.bias"].shape, vec![7]);
        assert_eq!(wide["fc.weight"].data[..4 * 512], w["fc.weight"].data[..]);
        // The new rows are a fresh head's: small, not zero, not copies of the class rows.
        let extra = &wide["fc.weight"].data[4 * 512..];
        let bound = 1.0 / 512f32.sqrt();
        assert!(extra.iter().all(|v| v.abs() <= bound) && extra.iter().any(|v| *v != 0.0));
        assert_eq!(class_head(wide), w);
        assert_eq!(widen_head(w.clone(), 0, 5), w);
    }
}
