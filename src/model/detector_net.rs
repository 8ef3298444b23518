//! The detector network as named weight tensors: one description that the ONNX writer and the
//! trainer share, as [`super::resnet`] is for the classifier.
//!
//! A small encoder–decoder (about 0.25 GMAC for a 256 x 256 slice, 0.6 M parameters): five
//! stride-2 stages of 3 x 3 conv-BN-ReLU pairs (16, 24, 48, 96, 128 channels) give the deepest
//! cells a view of most of the slice, which naming L5S1 needs (the sacrum's shape decides it);
//! three top-down steps (1 x 1 projection, nearest 2x upsampling, sum with the encoder's map,
//! 3 x 3 conv) bring that context back to stride 4, where a 3 x 3 and a 1 x 1 convolution give
//! ten maps: disc centre, L5S1, and the eight corner offsets ([`crate::disc::detection`]), and
//! in detectors with corner maps six more: a heatmap of the upper endplates' corners, one of
//! the lower endplates', and each one's offset within its cell. A corner regressed from the
//! disc's centre, 15–30 input pixels away, lands about two pixels off; a corner found where it
//! is, as a peak of its own map, needs no long reach.

use super::resnet::{check_shapes, ConvBn, WeightTensor, Weights};
use crate::error::Result;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Output maps of every detector: centre, L5S1, eight offsets.
pub const MAPS: usize = 10;
/// Output maps after those in a detector with corner maps: upper and lower corner heatmaps,
/// then dx, dy of the upper and of the lower corner within its cell.
pub const CORNER_MAPS: usize = 6;
/// The output maps of a detector with or without corner maps.
pub fn output_maps(corner_maps: bool) -> usize {
    MAPS + if corner_maps { CORNER_MAPS } else { 0 }
}

/// Input pixels per output cell.
pub const STRIDE: usize = 4;
/// Channels of the encoder stages (strides 2, 4, 8, 16, 32).
pub const ENCODER: [usize; 5] = [16, 24, 48, 96, 128];
/// Channels of the head at stride 4.
pub const HEAD: usize = 32;

fn cb(name: &str, in_ch: usize, out_ch: usize, kernel: usize, stride: usize) -> ConvBn {
    ConvBn {
        conv: format!("{name}.conv"),
        bn: format!("{name}.bn"),
        in_ch,
        out_ch,
        kernel,
        stride,
        pad: kernel / 2,
    }
}

/// One top-down step: project the coarser map, upsample it, add the encoder's map, smooth.
#[derive(Debug, Clone, PartialEq)]
pub struct TopDown {
    pub project: ConvBn,
    pub smooth: ConvBn,
}

/// The detector's structure.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorArch {
    /// Per encoder stage: the stride-2 conv, then a stride-1 conv (absent for the first stage).
    pub encoder: Vec<(ConvBn, Option<ConvBn>)>,
    /// From stride 32 down to stride 4; step k adds the encoder's stage `3 - k` output.
    pub top_down: Vec<TopDown>,
    pub head: ConvBn,
    /// The last 1 x 1 convolution (with a bias, no BatchNorm): `out.weight`, `out.bias`.
    pub out_in: usize,
    /// Its output maps: [`MAPS`], or [`MAPS`] + [`CORNER_MAPS`] with corner maps.
    pub maps: usize,
}

impl Default for DetectorArch {
    fn default() -> Self {
        let e = ENCODER;
        let mut encoder = vec![(cb("enc0", 1, e[0], 3, 2), None)];
        for s in 1..5 {
            encoder.push((
                cb(&format!("enc{s}"), e[s - 1], e[s], 3, 2),
                Some(cb(&format!("enc{s}b"), e[s], e[s], 3, 1)),
            ));
        }
        let top_down = (1..4)
            .rev()
            .map(|s| {
                let from = if s == 3 { e[4] } else { e[s + 1] };
                let out = if s == 1 { HEAD } else { e[s] };
                TopDown {
                    project: cb(&format!("top{s}"), from, e[s], 1, 1),
                    smooth: cb(&format!("dec{s}"), e[s], out, 3, 1),
                }
            })
            .collect();
        DetectorArch {
            encoder,
            top_down,
            head: cb("head", HEAD, HEAD, 3, 1),
            out_in: HEAD,
            maps: MAPS + CORNER_MAPS,
        }
    }
}

impl DetectorArch {
    /// The architecture with or without corner maps (a detector file's card says which).
    pub fn with_corner_maps(corner_maps: bool) -> DetectorArch {
        DetectorArch {
            maps: output_maps(corner_maps),
            ..Default::default()
        }
    }

    pub fn corner_maps(&self) -> bool {
        self.maps > MAPS
    }

    /// The indices of the output's heatmaps (centre, L5S1, and the corner heatmaps), whose
    /// biases start at the focal-loss prior.
    fn heatmap(&self, k: usize) -> bool {
        k < 2 || (self.corner_maps() && (k == MAPS || k == MAPS + 1))
    }

    /// Give weights made without corner maps (a detector trained before them) this
    /// architecture's output layer: the existing maps keep their weights, the corner maps start
    /// as [`DetectorArch::random_weights`] starts them. Weights that already fit are unchanged;
    /// returns whether any were widened.
    pub fn widen(&self, w: &mut Weights, seed: u64) -> bool {
        let fresh = self.random_weights(seed);
        let mut widened = false;
        for name in ["out.weight", "out.bias"] {
            let (Some(old), Some(new)) = (w.get_mut(name), fresh.get(name)) else {
                continue;
            };
            // Output channels come first, so the new maps' weights follow the old ones'.
            if old.shape[0] < new.shape[0] && old.data.len() < new.data.len() {
                old.data.extend_from_slice(&new.data[old.data.len()..]);
                old.shape = new.shape.clone();
                widened = true;
            }
        }
        widened
    }

    pub fn conv_bns(&self) -> impl Iterator<Item = &ConvBn> {
        self.encoder
            .iter()
            .flat_map(|(a, b)| std::iter::once(a).chain(b))
            .chain(self.top_down.iter().flat_map(|t| [&t.project, &t.smooth]))
            .chain(std::iter::once(&self.head))
    }

    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out: Vec<_> = self.conv_bns().flat_map(ConvBn::parameter_shapes).collect();
        out.push(("out.weight".into(), vec![self.maps, self.out_in, 1, 1]));
        out.push(("out.bias".into(), vec![self.maps]));
        out
    }

    /// Check that `w` holds every parameter with its shape.
    pub fn check(&self, w: &Weights) -> Result<()> {
        check_shapes(&self.parameter_shapes(), w)
    }

    /// Seeded starting weights: Kaiming-normal convolutions, identity BatchNorm, and an output
    /// layer whose heatmap biases start at a probability of 1 % (the focal-loss prior: almost
    /// every cell is background, and starting there keeps the first steps stable).
    pub fn random_weights(&self, seed: u64) -> Weights {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut w = Weights::new();
        for (name, shape) in self.parameter_shapes() {
            let n: usize = shape.iter().product();
            let data = if name == "out.bias" {
                let prior = -(99.0f32).ln();
                (0..n)
                    .map(|k| if self.heatmap(k) { prior } else { 0.0 })
                    .collect()
            } else if name.ends_with("running_var")
                || (shape.len() == 1 && name.ends_with(".weight"))
            {
                vec![1.0; n]
            } else if shape.len() == 1 {
                vec![0.0; n]
            } else {
                let fan_in = (shape[1] * shape[2] * shape[3]) as f32;
                let gain = if name == "out.weight" { 0.1 } else { 2.0 };
                let d = Normal::new(0.0, (gain / fan_in).sqrt()).expect("valid sd");
                (0..n).map(|_| d.sample(&mut rng)).collect()
            };
            w.insert(name, WeightTensor { shape, data });
        }
        w
    }
}
