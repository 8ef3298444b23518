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

use super::network::{conv_bn_layer, put, ConvBnLayer};
use crate::disc::detection::spec_order;
use crate::disc::geometry::Point;
use crate::error::{Error, Result};
use crate::image::slice::Slice;
use crate::image::warp::Affine;
use crate::model::detector::{stretched, DetectorInput};
use crate::model::detector_net::{DetectorArch, MAPS, STRIDE};
use crate::model::resnet::{WeightTensor, Weights};
use burn::module::{Module, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering;

/// One disc's truth on a training slice.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthDisc {
    /// SPEC order.
    pub corners: [Point; 4],
    /// 0 = L5S1, counting up.
    pub from_sacrum: usize,
}

/// A slice prepared for detector training: stretched once, kept in memory.
#[derive(Debug, Clone)]
pub struct DetSample {
    pub name: String,
    pub subject: String,
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
    pub discs: Vec<TruthDisc>,
    /// Real slices: every disc above the topmost marked one is unmarked, so that region is not
    /// scored.
    pub partial_truth: bool,
}

impl DetSample {
    pub fn new(
        name: String,
        subject: String,
        slice: &Slice,
        input: &DetectorInput,
        discs: Vec<TruthDisc>,
        partial_truth: bool,
    ) -> DetSample {
        DetSample {
            name,
            subject,
            width: slice.width,
            height: slice.height,
            values: stretched(slice, input),
            discs: discs
                .into_iter()
                .map(|d| TruthDisc {
                    corners: spec_order(d.corners),
                    ..d
                })
                .collect(),
            partial_truth,
        }
    }
}

#[derive(Module, Debug)]
pub struct Stage {
    pub down: ConvBnLayer,
    pub same: Option<ConvBnLayer>,
}

#[derive(Module, Debug)]
pub struct Step {
    pub project: ConvBnLayer,
    pub smooth: ConvBnLayer,
}

/// The detector in burn, built from and exported to [`DetectorArch`]'s named weights.
#[derive(Module, Debug)]
pub struct DetectorNet {
    pub encoder: Vec<Stage>,
    pub top_down: Vec<Step>,
    pub head: ConvBnLayer,
    pub out: Conv2d,
}

fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .repeat_dim(3, 2)
        .repeat_dim(5, 2)
        .reshape([n, c, 2 * h, 2 * w])
}

fn named_param<const D: usize>(name: &str, t: &WeightTensor, device: &Device) -> Param<Tensor<D>> {
    let id = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut p = Param::from_tensor(Tensor::from_data(
        TensorData::new(t.data.clone(), t.shape.clone()),
        device,
    ));
    p.id = ParamId::from(id);
    p
}

impl DetectorNet {
    pub fn from_weights(arch: &DetectorArch, w: &Weights, device: &Device) -> Result<DetectorNet> {
        arch.check(w)?;
        let encoder = arch
            .encoder
            .iter()
            .map(|(d, s)| Stage {
                down: conv_bn_layer(d, w, device),
                same: s.as_ref().map(|s| conv_bn_layer(s, w, device)),
            })
            .collect();
        let top_down = arch
            .top_down
            .iter()
            .map(|t| Step {
                project: conv_bn_layer(&t.project, w, device),
                smooth: conv_bn_layer(&t.smooth, w, device),
            })
            .collect();
        let mut out = Conv2dConfig::new([arch.out_in, MAPS], [1, 1]).init(device);
        out.weight = named_param("out.weight", &w["out.weight"], device);
        out.bias = Some(named_param("out.bias", &w["out.bias"], device));
        Ok(DetectorNet {
            encoder,
            top_down,
            head: conv_bn_layer(&arch.head, w, device),
            out,
        })
    }

    pub fn export(&self, arch: &DetectorArch) -> Weights {
        let mut w = Weights::new();
        for (stage, (d, s)) in self.encoder.iter().zip(&arch.encoder) {
            stage.down.export(d, &mut w);
            if let (Some(l), Some(s)) = (&stage.same, s) {
                l.export(s, &mut w);
            }
        }
        for (step, t) in self.top_down.iter().zip(&arch.top_down) {
            step.project.export(&t.project, &mut w);
            step.smooth.export(&t.smooth, &mut w);
        }
        self.head.export(&arch.head, &mut w);
        put(&mut w, "out.weight", self.out.weight.val());
        put(
            &mut w,
            "out.bias",
            self.out.bias.as_ref().expect("out has a bias").val(),
        );
        w
    }

    /// `[n, 1, s, s]` in, `[n, 10, s / 4, s / 4]` maps out (logits and offsets).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut x = x;
        for stage in &self.encoder {
            x = relu(stage.down.forward(x));
            if let Some(s) = &stage.same {
                x = relu(s.forward(x));
            }
            skips.push(x.clone());
        }
        for (k, step) in self.top_down.iter().enumerate() {
            let up = upsample2(step.project.forward(x));
            x = relu(step.smooth.forward(up + skips[3 - k].clone()));
        }
        self.out.forward(relu(self.head.forward(x)))
    }
}

/// A random view of `s`: mostly a crop around its spine at the second view's scale, sometimes
/// the whole slice as the first view sees it, sometimes a tight partial view.
pub fn random_view(s: &DetSample, size: usize, rng: &mut SmallRng) -> Affine {
    let full = s.width.max(s.height) as f64 / size as f64;
    let angle = rng.random_range(-0.25..0.25);
    let (mut cx, mut cy) = (0.5 * s.width as f64, 0.5 * s.height as f64);
    let u: f64 = rng.random();
    let scale = if s.discs.is_empty() || u < 0.35 {
        cx += rng.random_range(-0.1..0.1) * s.width as f64;
        cy += rng.random_range(-0.1..0.1) * s.height as f64;
        full * rng.random_range(0.85..1.3)
    } else if u < 0.85 {
        let pts: Vec<Point> = s.discs.iter().flat_map(|d| d.corners).collect();
        let (x0, x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.x), a.1.max(p.x)));
        let (y0, y1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.y), a.1.max(p.y)));
        let w = (x1 - x0).max(1.0) / 2.0;
        let side = (x1 - x0 + 2.4 * w.min(60.0)).max(y1 - y0 + 2.6 * w.min(60.0));
        cx = 0.5 * (x0 + x1) + rng.random_range(-0.12..0.12) * side;
        cy = 0.5 * (y0 + y1) + rng.random_range(-0.12..0.12) * side;
        (side / size as f64 * rng.random_range(0.8..1.35)).min(full * 1.3)
    } else {
        let d = &s.discs[rng.random_range(0..s.discs.len())];
        let c = d
            .corners
            .iter()
            .fold((0.0, 0.0), |a, p| (a.0 + p.x / 4.0, a.1 + p.y / 4.0));
        cx = c.0 + rng.random_range(-40.0..40.0);
        cy = c.1 + rng.random_range(-40.0..40.0);
        full * rng.random_range(0.3..0.6)
    };
    let half = 0.5 * size as f64;
    let (sn, cs) = f64::sin_cos(angle);
    let origin = (
        cx - scale * (cs * half - sn * half),
        cy - scale * (sn * half + cs * half),
    );
    Affine::similarity(scale, angle, origin)
}

/// Contrast, gamma, coil bias and noise on a view's stretched values, before normalisation.
fn jitter_intensity(v: &mut [f32], size: usize, rng: &mut SmallRng) {
    let gamma: f32 = rng.random_range(0.6..1.6);
    let gain: f32 = rng.random_range(0.75..1.25);
    let offset: f32 = rng.random_range(-0.08..0.08);
    let (bx, by): (f32, f32) = (rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3));
    let noise: f32 = rng.random_range(0.0..0.05);
    for (k, x) in v.iter_mut().enumerate() {
        let (u, w) = (
            (k % size) as f32 / size as f32 - 0.5,
            (k / size) as f32 / size as f32 - 0.5,
        );
        let bias = 1.0 + bx * u + by * w;
        let n: f32 = if noise > 0.0 {
            noise * (rng.random::<f32>() - 0.5) * 3.46
        } else {
            0.0
        };
        *x = ((x.max(0.0).powf(gamma) * gain * bias + offset) + n).clamp(0.0, 1.2);
    }
}

/// Per view: the network input and its targets on the `g x g` grid.
struct Targets {
    input: Vec<f32>,
    /// Two planes (centre, L5S1) of Gaussian peaks.
    heat: Vec<f32>,
    /// Where the peak maps are scored (0 above a real slice's topmost marked disc).
    weight: Vec<f32>,
    offsets: Vec<f32>,
    offset_mask: Vec<f32>,
    peaks: usize,
}

fn targets(
    s: &DetSample,
    view: &Affine,
    input: &DetectorInput,
    unit: f64,
    rng: &mut SmallRng,
) -> Targets {
    let size = input.size;
    let g = size / STRIDE;
    let plane = g * g;
    let mut values = crate::image::warp::warp(
        &s.values,
        s.width,
        s.height,
        view,
        size,
        size,
        input.pad_value,
    );
    jitter_intensity(&mut values, size, rng);
    values
        .iter_mut()
        .for_each(|x| *x = (*x - input.mean) / input.std);
    let to_view = view.inverse().expect("a similarity with scale > 0");
    let mut t = Targets {
        input: values,
        heat: vec![0.0; 2 * plane],
        weight: vec![1.0; 2 * plane],
        offsets: vec![0.0; 8 * plane],
        offset_mask: vec![0.0; 8 * plane],
        peaks: 0,
    };
    let stride = STRIDE as f64;
    let mut top: Option<(Point, Point, f64)> = None;
    for d in &s.discs {
        let c: Vec<Point> = d
            .corners
            .iter()
            .map(|p| {
                let (u, v) = to_view.apply(p.x, p.y);
                Point::new(u, v)
            })
            .collect();
        let cx = c.iter().map(|p| p.x).sum::<f64>() / 4.0;
        let cy = c.iter().map(|p| p.y).sum::<f64>() / 4.0;
        let width = 0.5
            * ((c[1].x - c[0].x).hypot(c[1].y - c[0].y) + (c[3].x - c[2].x).hypot(c[3].y - c[2].y));
        if s.partial_truth && top.as_ref().is_none_or(|t| d.from_sacrum > t.2 as usize) {
            let (sx, sy) = (
                0.5 * (s.discs[0].corners[0].x + s.discs[0].corners[1].x),
                0.0,
            );
            let _ = (sx, sy);
            top = Some((
                Point::new(cx, cy),
                Point::new(c[1].x - c[0].x, c[1].y - c[0].y),
                d.from_sacrum as f64,
            ));
        }
        let (ci, cj) = ((cx / stride).floor(), (cy / stride).floor());
        if ci < 0.0 || cj < 0.0 || ci >= g as f64 || cj >= g as f64 {
            continue;
        }
        let (ci, cj) = (ci as usize, cj as usize);
        t.peaks += 1;
        let sigma = (width / stride * 0.1).max(0.7);
        let r = (3.0 * sigma).ceil() as usize;
        for j in cj.saturating_sub(r)..(cj + r + 1).min(g) {
            for i in ci.saturating_sub(r)..(ci + r + 1).min(g) {
                let (di, dj) = (i as f64 - ci as f64, j as f64 - cj as f64);
                let h = if (i, j) == (ci, cj) {
                    1.0
                } else {
                    (-(di * di + dj * dj) / (2.0 * sigma * sigma)).exp() as f32 * 0.99
                };
                let k = j * g + i;
                t.heat[k] = t.heat[k].max(h);
                if d.from_sacrum == 0 {
                    t.heat[plane + k] = t.heat[plane + k].max(h);
                }
                if di.abs() <= 1.0 && dj.abs() <= 1.0 {
                    let (x0, y0) = ((i as f64 + 0.5) * stride, (j as f64 + 0.5) * stride);
                    for (q, p) in c.iter().enumerate() {
                        t.offsets[2 * q * plane + k] = ((p.x - x0) / unit) as f32;
                        t.offsets[(2 * q + 1) * plane + k] = ((p.y - y0) / unit) as f32;
                        t.offset_mask[2 * q * plane + k] = 1.0;
                        t.offset_mask[(2 * q + 1) * plane + k] = 1.0;
                    }
                }
            }
        }
    }
    // Above the topmost marked disc of a real slice (half a disc width past its centre, along
    // the spine), nothing is scored.
    if let Some((c, e, _)) = top {
        let len = e.x.hypot(e.y).max(1e-6);
        // Up is the endplate direction turned a quarter away from the feet.
        let (ux, uy) = (e.x / len, e.y / len);
        let (vx, vy) = if ux >= 0.0 { (-uy, ux) } else { (uy, -ux) };
        for j in 0..g {
            for i in 0..g {
                let (x, y) = (
                    (i as f64 + 0.5) * stride - c.x,
                    (j as f64 + 0.5) * stride - c.y,
                );
                if -(x * vx + y * vy) > 0.5 * len {
                    t.weight[j * g + i] = 0.0;
                    t.weight[plane + j * g + i] = 0.0;
                }
            }
        }
    }
    t
}

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
}

fn to_tensor(data: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// Train (or resume) a detector on `phantoms` and `real` slices. Checkpoints go to `dir` after
/// every epoch; returns the weights of the best epoch by the caller's validation score (the
/// last epoch when none was measured) and the run state.
#[allow(clippy::too_many_arguments)]
pub fn train_detector(
    phantoms: &[DetSample],
    real: &[DetSample],
    input: &DetectorInput,
    unit: f64,
    config: DetectorConfig,
    init: Weights,
    data_hash: &str,
    dir: &std::path::Path,
    resume: bool,
    progress: &mut dyn DetectorProgress,
) -> Result<(Weights, DetectorRunState)> {
    if phantoms.is_empty() && real.is_empty() {
        return Err(Error::Invalid(
            "no slices with discs to train the detector on".into(),
        ));
    }
    let arch = DetectorArch::default();
    let device = Device::flex().autodiff();
    let state_path = dir.join("detector-checkpoint.json");
    let (mut state, weights, mut best) = if resume {
        let text = std::fs::read_to_string(&state_path).map_err(|e| {
            Error::Invalid(format!(
                "{}: {e}; nothing to resume there (drop --resume, or point --checkpoints at the run's folder)",
                state_path.display()
            ))
        })?;
        let state: DetectorRunState = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", state_path.display())))?;
        if state.data_hash != data_hash {
            return Err(Error::Invalid(format!(
                "{}: the checkpoint was trained on other data; resume with the run's own data, or start afresh in another --checkpoints folder",
                state_path.display()
            )));
        }
        let read = |f: &str| -> Result<Weights> {
            let p = dir.join(f);
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let proto = crate::model::file::parse_proto(&p.display().to_string(), &bytes)?;
            crate::model::file::read_initializers(&p.display().to_string(), &proto)
        };
        let w = read("detector-last.onnx")?;
        let b = read("detector-best.onnx").unwrap_or_else(|_| w.clone());
        (state, w, b)
    } else {
        let state = DetectorRunState {
            config: config.clone(),
            next_epoch: 0,
            best_score: None,
            best_epoch: None,
            losses: Vec::new(),
            data_hash: data_hash.into(),
        };
        (state, init.clone(), init)
    };
    // A resumed run keeps its settings but takes the length asked now, so a run can be extended.
    state.config.epochs = config.epochs;
    let config = state.config.clone();
    let mut model = DetectorNet::from_weights(&arch, &weights, &device)?;
    let mut optim = AdamConfig::new().init();
    let adam_path = dir.join("detector-last.adam.bpk");
    if resume && adam_path.exists() {
        let record = burn::optim::OptimizerRecord::load(&adam_path)
            .map_err(|e| Error::Invalid(format!("{}: {e:?}", adam_path.display())))?;
        optim = optim.load_record(record);
    }
    let size = input.size;
    let g = size / STRIDE;
    let plane = g * g;
    let card = crate::model::detector::DetectorCard::new("checkpoint", Default::default());
    let write = |name: &str, w: &Weights| -> Result<()> {
        crate::files::write_atomic(
            &dir.join(name),
            &crate::model::detector::write_detector(
                &arch,
                w,
                &card,
                crate::model::file::BatchNorm::Keep,
            )?,
        )
    };
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
            let mask_sum: f32 = batch
                .iter()
                .map(|t| t.offset_mask.iter().sum::<f32>())
                .sum();
            let maps = model.forward(x);
            let logits = maps.clone().slice([0..n, 0..2, 0..g, 0..g]);
            let offs = maps.slice([0..n, 2..MAPS, 0..g, 0..g]);
            let p = sigmoid(logits).clamp(1e-4, 1.0 - 1e-4);
            let pos = heat.clone().equal_elem(1.0).float();
            let neg = pos.clone().neg().add_scalar(1.0);
            let one_minus_p = p.clone().neg().add_scalar(1.0);
            let pos_loss = p.clone().log() * one_minus_p.clone().powf_scalar(2.0) * pos;
            let neg_w = heat.neg().add_scalar(1.0).powf_scalar(4.0) * neg * weight;
            let neg_loss = one_minus_p.log() * p.powf_scalar(2.0) * neg_w;
            let focal = (pos_loss.sum() + neg_loss.sum())
                .neg()
                .div_scalar(peaks.max(1) as f32);
            let l1 = ((offs - off_t).abs() * off_m)
                .sum()
                .div_scalar(mask_sum.max(1.0));
            let loss = focal + l1;
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
        let _ = plane;
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
            write("detector-best.onnx", &best)?;
        }
        write("detector-last.onnx", &current)?;
        let bytes = optim
            .to_record()
            .into_bytes()
            .map_err(|e| Error::Invalid(format!("optimizer state: {e:?}")))?;
        crate::files::write_atomic(&adam_path, &bytes)?;
        state.next_epoch = epoch + 1;
        crate::files::write_atomic(
            &state_path,
            serde_json::to_string_pretty(&state)
                .expect("json")
                .as_bytes(),
        )?;
    }
    Ok((best, state))
}
