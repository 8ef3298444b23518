//! Training the disc detector ([`crate::model::detector_net`]) on phantoms and on real slices
//! with corners, in burn on the CPU.
//!
//! Every draw is a fresh random view of a slice — the whole slice or a zoomed crop around its
//! spine, rotated, shifted, with its contrast, gamma, noise and coil bias changed — so a few
//! hundred slices give an unbounded stream of inputs, and the same network serves the
//! detector's first (whole slice) and second (zoomed) view. Targets: a Gaussian peak per disc
//! centre, a second one for L5S1 alone, and the corner offsets on the 3 x 3 cells around each
//! centre. Loss: CenterNet's penalty-reduced focal loss on both peak maps plus L1 on the
//! offsets. Real slices carry corners for L1L2–L5S1 only, so their maps are not scored above
//! L1L2, where unmarked thoracic discs would otherwise teach the network to miss discs.

use super::checkpoint;
use super::detector_views::{random_view, targets, DetSample, Targets};
use super::network::DetectorNet;
use crate::disc::detection::DecodeParams;
use crate::error::{Error, Result};
use crate::model::detector::{write_detector, DetectorCard, DetectorInput};
use crate::model::detector_net::{DetectorArch, CORNER_MAPS, MAPS, STRIDE};
use crate::model::file::BatchNorm;
use crate::model::resnet::Weights;
use burn::optim::GradientsParams;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering;

/// CenterNet's penalty-reduced focal loss of heatmap `logits` against Gaussian-peaked `heat`
/// (1 exactly at each peak), background cells weighted by `weight`, per peak.
fn focal(logits: Tensor<4>, heat: Tensor<4>, weight: Tensor<4>, peaks: usize) -> Tensor<1> {
    let p = sigmoid(logits).clamp(1e-4, 1.0 - 1e-4);
    let pos = heat.clone().equal_elem(1.0).float();
    let neg = pos.clone().neg().add_scalar(1.0);
    let one_minus_p = p.clone().neg().add_scalar(1.0);
    let pos_loss = p.clone().log() * one_minus_p.clone().powf_scalar(2.0) * pos;
    let neg_w = heat.neg().add_scalar(1.0).powf_scalar(4.0) * neg * weight;
    let neg_loss = one_minus_p.log() * p.powf_scalar(2.0) * neg_w;
    (pos_loss.sum() + neg_loss.sum())
        .neg()
        .div_scalar(peaks.max(1) as f32)
}

/// Mean absolute error over the cells where `mask` is 1.
fn masked_l1(pred: Tensor<4>, target: Tensor<4>, mask: Tensor<4>) -> Tensor<1> {
    ((pred - target).abs() * mask.clone())
        .sum()
        .div(mask.sum().clamp_min(1.0))
}

/// The best epoch's weights in a detector checkpoint folder.
const BEST: &str = "detector-best.onnx";

/// Settings of a detector run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DetectorConfig {
    pub epochs: usize,
    /// Views drawn per epoch.
    pub views_per_epoch: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Share of each batch drawn from real slices, when there are any.
    pub real_share: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            epochs: 30,
            views_per_epoch: 800,
            batch: 16,
            lr: 2e-3,
            seed: 1,
            real_share: 0.5,
        }
    }
}

/// Progress of a detector run, so the library stays free of terminal code.
pub trait DetectorProgress {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64);
    /// After each epoch; the weights are the epoch's, for a validation pass by the caller.
    /// Returns the validation score (higher is better) when the caller measured one.
    fn epoch(&mut self, epoch: usize, loss: f64, seconds: f64, weights: &Weights) -> Option<f64>;
}

/// What a checkpoint folder holds besides the weights and Adam's state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DetectorRunState {
    pub config: DetectorConfig,
    pub next_epoch: usize,
    pub best_score: Option<f64>,
    pub best_epoch: Option<usize>,
    pub losses: Vec<f64>,
    pub data_hash: String,
    /// The last epoch's weights and Adam state in the checkpoint folder (this file is written
    /// after them, so the pair always matches).
    pub weights_file: String,
    pub optimizer_file: String,
}

/// The run state of a detector checkpoint folder.
pub fn detector_state_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("detector-checkpoint.json")
}

fn to_tensor(data: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// What a run without a single slice to learn from is told: the first step that needs one
/// (measuring an exported detector's statistics, or training) says so.
fn no_slices() -> Error {
    Error::Invalid(
        "no slices with discs to train the detector on: give --phantoms N (N > 0) or --manifest with real slices".into(),
    )
}

/// Training views whose statistics [`restat_for_training`] measures.
pub const RESTAT_VIEWS: usize = 64;

/// Weights read from an exported detector (BatchNorms folded into the convolutions, as in
/// `models/endplate-detector.onnx`), unfolded so that the network computes exactly what the
/// file does ([`crate::model::resnet::unfold_conv_bns`]). `None` when they are not a folded
/// detector. Before training, [`restat_for_training`] must give the BatchNorms real statistics.
pub fn unfold_detector(folded: &Weights, arch: &DetectorArch) -> Option<Weights> {
    crate::model::resnet::unfold_conv_bns(folded, arch.conv_bns(), &["out.weight", "out.bias"])
}

/// Every BatchNorm's statistics measured on [`RESTAT_VIEWS`] training views drawn with `seed`
/// (real and phantom slices in turn), the eval-mode maps unchanged: after
/// [`unfold_detector`], training mode would otherwise normalise activations that the folded
/// kernels never expected, and the first steps would undo what the file had learnt.
pub fn restat_for_training(
    w: &Weights,
    arch: &DetectorArch,
    phantoms: &[DetSample],
    real: &[DetSample],
    input: &DetectorInput,
    seed: u64,
) -> Result<Weights> {
    let device = super::device();
    let unit = DecodeParams::default().offset_unit;
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED_57A7);
    let size = input.size;
    let mut x = Vec::with_capacity(RESTAT_VIEWS * size * size);
    for k in 0..RESTAT_VIEWS {
        let pool = if (k % 2 == 0 && !real.is_empty()) || phantoms.is_empty() {
            real
        } else {
            phantoms
        };
        let Some(s) = pool.get(rng.random_range(0..pool.len().max(1))) else {
            return Err(no_slices());
        };
        let view = random_view(s, size, &mut rng);
        x.extend(targets(s, &view, input, unit, &mut rng).input);
    }
    let x = to_tensor(x, [RESTAT_VIEWS, 1, size, size], &device);
    Ok(DetectorNet::from_weights(arch, w, &device)?
        .restat_batchnorm(x)
        .export(arch))
}

/// Train (or resume) a detector on `phantoms` and `real` slices. Checkpoints go to `dir` after
/// every epoch; returns the weights of the best epoch by the caller's validation score (the
/// last epoch when none was measured) and the run state.
#[allow(clippy::too_many_arguments)]
pub fn train_detector(
    phantoms: &[DetSample],
    real: &[DetSample],
    input: &DetectorInput,
    config: DetectorConfig,
    init: Weights,
    data_hash: &str,
    dir: &std::path::Path,
    resume: bool,
    progress: &mut dyn DetectorProgress,
) -> Result<(Weights, DetectorRunState)> {
    if phantoms.is_empty() && real.is_empty() {
        return Err(no_slices());
    }
    let arch = DetectorArch::default();
    let device = super::device().autodiff();
    // The offsets are learnt in the unit the card's decoder reads them in.
    let unit = DecodeParams::default().offset_unit;
    let state_path = detector_state_path(dir);
    let (mut state, weights, mut best) = if resume {
        let state: DetectorRunState =
            checkpoint::read_state(&state_path, data_hash, |s: &DetectorRunState| &s.data_hash)?;
        let (w, b) = checkpoint::read_weights_and_best(dir, &state.weights_file, BEST)?;
        (state, w, b)
    } else {
        let state = DetectorRunState {
            config: config.clone(),
            next_epoch: 0,
            best_score: None,
            best_epoch: None,
            losses: Vec::new(),
            data_hash: data_hash.into(),
            weights_file: String::new(),
            optimizer_file: String::new(),
        };
        (state, init.clone(), init)
    };
    // A resumed run keeps its settings but takes the length asked now, so a run can be extended.
    state.config.epochs = config.epochs;
    let config = state.config.clone();
    let mut model = DetectorNet::from_weights(&arch, &weights, &device)?;
    let mut optim = checkpoint::adam(dir, Some(state.optimizer_file.as_str()).filter(|_| resume))?;
    let size = input.size;
    let g = size / STRIDE;
    let card = DetectorCard::new("checkpoint", Default::default());
    let model_bytes = |w: &Weights| write_detector(&arch, w, &card, BatchNorm::Keep);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;

    for epoch in state.next_epoch..config.epochs {
        let start = std::time::Instant::now();
        // Cosine decay to a tenth over the run.
        let lr = config.lr
            * (0.1
                + 0.9
                    * 0.5
                    * (1.0 + (std::f64::consts::PI * epoch as f64 / config.epochs as f64).cos()));
        let mut rng = SmallRng::seed_from_u64(
            config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(epoch as u64),
        );
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let total = config.views_per_epoch;
        while seen < total {
            let n = config.batch.min(total - seen).max(1);
            let mut batch = Vec::with_capacity(n);
            for _ in 0..n {
                let use_real = !real.is_empty()
                    && (phantoms.is_empty() || rng.random::<f64>() < config.real_share);
                let pool = if use_real { real } else { phantoms };
                let s = &pool[rng.random_range(0..pool.len())];
                let view = random_view(s, size, &mut rng);
                batch.push(targets(s, &view, input, unit, &mut rng));
            }
            let cat = |f: fn(&Targets) -> &Vec<f32>| -> Vec<f32> {
                batch.iter().flat_map(|t| f(t).iter().copied()).collect()
            };
            let x = to_tensor(cat(|t| &t.input), [n, 1, size, size], &device);
            let heat = to_tensor(cat(|t| &t.heat), [n, 2, g, g], &device);
            let weight = to_tensor(cat(|t| &t.weight), [n, 2, g, g], &device);
            let off_t = to_tensor(cat(|t| &t.offsets), [n, 8, g, g], &device);
            let off_m = to_tensor(cat(|t| &t.offset_mask), [n, 8, g, g], &device);
            let peaks: usize = batch.iter().map(|t| t.peaks).sum();
            let maps = model.forward(x);
            let logits = maps.clone().slice([0..n, 0..2, 0..g, 0..g]);
            let offs = maps.clone().slice([0..n, 2..MAPS, 0..g, 0..g]);
            let disc_loss =
                focal(logits, heat, weight.clone(), peaks) + masked_l1(offs, off_t, off_m);
            // The corner maps (every detector trained now has them, `DetectorArch::default`).
            let heat = to_tensor(cat(|t| &t.corner_heat), [n, 2, g, g], &device);
            let off_t = to_tensor(cat(|t| &t.corner_offsets), [n, 4, g, g], &device);
            let off_m = to_tensor(cat(|t| &t.corner_mask), [n, 4, g, g], &device);
            let peaks: usize = batch.iter().map(|t| t.corner_peaks).sum();
            // The centre map's weights (zero above a real slice's marked discs) for both.
            let weight = weight.slice([0..n, 0..1, 0..g, 0..g]).repeat_dim(1, 2);
            let logits = maps.clone().slice([0..n, MAPS..MAPS + 2, 0..g, 0..g]);
            let offs = maps.slice([0..n, MAPS + 2..MAPS + CORNER_MAPS, 0..g, 0..g]);
            let loss =
                disc_loss + focal(logits, heat, weight, peaks) + masked_l1(offs, off_t, off_m);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            let l = loss
                .inner()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("float")[0] as f64;
            loss_sum += l * n as f64;
            seen += n;
            progress.batch(epoch, seen, total, loss_sum / seen as f64);
            if crate::train::STOP.load(Ordering::Relaxed) {
                break;
            }
        }
        let stopped = crate::train::STOP.load(Ordering::Relaxed) && seen < total;
        if stopped {
            break;
        }
        let current = model.export(&arch);
        let loss = loss_sum / seen.max(1) as f64;
        let score = progress.epoch(epoch, loss, start.elapsed().as_secs_f64(), &current);
        state.losses.push(loss);
        let better = match (score, state.best_score) {
            (Some(s), Some(b)) => s > b,
            (Some(_), None) => true,
            (None, _) => true,
        };
        if better {
            state.best_score = score;
            state.best_epoch = Some(epoch);
            best = current.clone();
            crate::files::write_atomic(&dir.join(BEST), &model_bytes(&best)?)?;
        }
        let (wf, of) = checkpoint::write_epoch(dir, epoch, &model_bytes(&current)?, &optim)?;
        let old = (
            std::mem::replace(&mut state.weights_file, wf),
            std::mem::replace(&mut state.optimizer_file, of),
        );
        state.next_epoch = epoch + 1;
        checkpoint::write_state(&state_path, &state)?;
        checkpoint::remove_replaced(
            dir,
            [Some(old.0.as_str()), Some(old.1.as_str())],
            [&state.weights_file, &state.optimizer_file],
        );
    }
    Ok((best, state))
}
