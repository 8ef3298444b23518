//! The ResNet18 of torchvision as named weight tensors: the one description of the network that
//! the ONNX writer, the ONNX weight reader (`--init`) and the trainer all agree on.

use crate::error::{Error, Result};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};
use std::collections::BTreeMap;

/// One named tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Weights by torchvision parameter name (`layer2.0.downsample.1.running_var`, `fc.weight`, ...).
pub type Weights = BTreeMap<String, WeightTensor>;

/// The four stages' widths.
pub const STAGE_WIDTHS: [usize; 4] = [64, 128, 256, 512];
pub const BN_EPSILON: f32 = 1e-5;

/// A convolution and the BatchNorm that follows it, by their torchvision names.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvBn {
    pub conv: String,
    pub bn: String,
    pub in_ch: usize,
    pub out_ch: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvBn {
    /// The convolution's kernel and the BatchNorm's four vectors, by name.
    pub fn parameter_shapes(&self) -> [(String, Vec<usize>); 5] {
        let bn = |f: &str| (format!("{}.{f}", self.bn), vec![self.out_ch]);
        [
            (
                format!("{}.weight", self.conv),
                vec![self.out_ch, self.in_ch, self.kernel, self.kernel],
            ),
            bn("weight"),
            bn("bias"),
            bn("running_mean"),
            bn("running_var"),
        ]
    }
}

/// Check that `weights` holds every named parameter with its shape; name the first that does
/// not.
pub fn check_shapes(shapes: &[(String, Vec<usize>)], weights: &Weights) -> Result<()> {
    for (name, shape) in shapes {
        match weights.get(name) {
            None => return Err(Error::Invalid(format!("weight `{name}` is missing"))),
            Some(t) if t.shape != *shape || t.data.len() != shape.iter().product::<usize>() => {
                return Err(Error::Invalid(format!(
                    "weight `{name}` has shape {:?} ({} values), expected {:?}",
                    t.shape,
                    t.data.len(),
                    shape
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// One basic block: two 3x3 conv-bn pairs and, where the shape changes, a 1x1 projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    pub downsample: Option<ConvBn>,
}

/// The whole network's structure; the head is `fc` with `classes` outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub stem: ConvBn,
    pub blocks: Vec<Block>,
    pub classes: usize,
}

impl Architecture {
    pub fn resnet18(classes: usize) -> Architecture {
        let cb = |conv: String, bn: String, in_ch, out_ch, kernel, stride, pad| ConvBn {
            conv,
            bn,
            in_ch,
            out_ch,
            kernel,
            stride,
            pad,
        };
        let stem = cb("conv1".into(), "bn1".into(), 3, 64, 7, 2, 3);
        let mut blocks = Vec::new();
        let mut in_ch = 64;
        for (stage, &out_ch) in STAGE_WIDTHS.iter().enumerate() {
            for b in 0..2 {
                let p = format!("layer{}.{}", stage + 1, b);
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let downsample = (stride != 1 || in_ch != out_ch).then(|| {
                    cb(
                        format!("{p}.downsample.0"),
                        format!("{p}.downsample.1"),
                        in_ch,
                        out_ch,
                        1,
                        stride,
                        0,
                    )
                });
                blocks.push(Block {
                    conv1: cb(
                        format!("{p}.conv1"),
                        format!("{p}.bn1"),
                        in_ch,
                        out_ch,
                        3,
                        stride,
                        1,
                    ),
                    conv2: cb(
                        format!("{p}.conv2"),
                        format!("{p}.bn2"),
                        out_ch,
                        out_ch,
                        3,
                        1,
                        1,
                    ),
                    downsample,
                });
                in_ch = out_ch;
            }
        }
        Architecture {
            stem,
            blocks,
            classes,
        }
    }

    pub fn conv_bns(&self) -> impl Iterator<Item = &ConvBn> {
        std::iter::once(&self.stem).chain(
            self.blocks
                .iter()
                .flat_map(|b| [Some(&b.conv1), Some(&b.conv2), b.downsample.as_ref()])
                .flatten(),
        )
    }

    /// Every parameter (and BatchNorm buffer) with its shape, in torchvision's naming.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out: Vec<_> = self.conv_bns().flat_map(ConvBn::parameter_shapes).collect();
        out.push(("fc.weight".into(), vec![self.classes, 512]));
        out.push(("fc.bias".into(), vec![self.classes]));
        out
    }

    /// Check that `weights` holds every parameter with the right shape; name the first that
    /// does not.
    pub fn check(&self, weights: &Weights) -> Result<()> {
        check_shapes(&self.parameter_shapes(), weights)
    }

    /// Seeded random weights: Kaiming-normal convolutions (fan-out, as torchvision initialises
    /// them) and non-trivial BatchNorm statistics, so a test of the graph exercises every term.
    pub fn random_weights(&self, seed: u64) -> Weights {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut w = Weights::new();
        let uniform = |rng: &mut SmallRng, lo: f32, hi: f32, n: usize| -> Vec<f32> {
            let d = Uniform::new(lo, hi).expect("valid range");
            (0..n).map(|_| d.sample(rng)).collect()
        };
        for (name, shape) in self.parameter_shapes() {
            let n: usize = shape.iter().product();
            let data = if name.ends_with("running_var") {
                uniform(&mut rng, 0.5, 2.0, n)
            } else if name.ends_with("running_mean") || name.ends_with(".bias") {
                uniform(&mut rng, -0.1, 0.1, n)
            } else if shape.len() == 1 {
                uniform(&mut rng, 0.5, 1.5, n)
            } else if shape.len() == 4 {
                let fan_out = (shape[0] * shape[2] * shape[3]) as f32;
                let d = Normal::new(0.0, (2.0 / fan_out).sqrt()).expect("valid sd");
                (0..n).map(|_| d.sample(&mut rng)).collect()
            } else {
                let bound = 1.0 / (shape[1] as f32).sqrt();
                uniform(&mut rng, -bound, bound, n)
            };
            w.insert(name, WeightTensor { shape, data });
        }
        w
    }
}

/// The inverse of folding, for a model file written with its BatchNorms folded (the bundled
/// model): each convolution keeps its folded kernel, and its BatchNorm gets running mean 0,
/// variance 1, scale √(1 + ε) and the folded bias, so the network computes exactly what the
/// file does in eval mode. Training-mode BatchNorm would still see wrong statistics:
/// `train::network::ResNet18::restat_batchnorm` measures them on data before fine-tuning.
/// `None` when the weights are not a folded model of `arch`.
pub fn unfold_batchnorm(folded: &Weights, arch: &Architecture) -> Option<Weights> {
    let out = unfold_conv_bns(folded, arch.conv_bns(), &["fc.weight", "fc.bias"])?;
    arch.check(&out).ok()?;
    Some(out)
}

/// [`unfold_batchnorm`] for any network of conv-BN pairs (the detector's too): the pairs
/// `convs` unfolded, the tensors named in `keep` (layers without a BatchNorm) copied as they
/// are. `None` when a pair's folded kernel or bias is missing or of the wrong width. The caller
/// checks the result against its architecture.
pub fn unfold_conv_bns<'a>(
    folded: &Weights,
    convs: impl IntoIterator<Item = &'a ConvBn>,
    keep: &[&str],
) -> Option<Weights> {
    let mut out = Weights::new();
    for c in convs {
        let w = folded.get(&format!("{}.weight", c.conv))?;
        let b = folded.get(&format!("{}.bias", c.conv))?;
        if b.data.len() != c.out_ch {
            return None;
        }
        out.insert(format!("{}.weight", c.conv), w.clone());
        let vector = |v: f32| WeightTensor {
            shape: vec![c.out_ch],
            data: vec![v; c.out_ch],
        };
        out.insert(
            format!("{}.weight", c.bn),
            vector((1.0 + BN_EPSILON).sqrt()),
        );
        out.insert(format!("{}.bias", c.bn), b.clone());
        out.insert(format!("{}.running_mean", c.bn), vector(0.0));
        out.insert(format!("{}.running_var", c.bn), vector(1.0));
    }
    for &k in keep {
        out.insert(k.into(), folded.get(k)?.clone());
    }
    Some(out)
}

/// Fold a BatchNorm into the convolution before it: returns the scaled kernel and a bias.
pub fn fold_batchnorm(weights: &Weights, c: &ConvBn) -> (WeightTensor, WeightTensor) {
    let get = |n: &str| &weights[&format!("{}.{n}", c.bn)].data;
    let (gamma, beta, mean, var) = (
        get("weight"),
        get("bias"),
        get("running_mean"),
        get("running_var"),
    );
    let kernel = &weights[&format!("{}.weight", c.conv)];
    let per_out = kernel.data.len() / c.out_ch;
    let mut data = kernel.data.clone();
    let mut bias = vec![0.0; c.out_ch];
    for o in 0..c.out_ch {
        let scale = gamma[o] / (var[o] + BN_EPSILON).sqrt();
        data[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .for_each(|x| *x *= scale);
        bias[o] = beta[o] - mean[o] * scale;
    }
    (
        WeightTensor {
            shape: kernel.shape.clone(),
            data,
        },
        WeightTensor {
            shape: vec![c.out_ch],
            data: bias,
        },
    )
}
