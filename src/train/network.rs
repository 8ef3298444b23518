//! The networks in burn — the classifier's ResNet18 (torchvision layout) and the disc
//! detector — each built from and exported to the named weight tensors of
//! [`crate::model::resnet`] and [`crate::model::detector_net`], so the ONNX writer, `--init` and checkpoints all speak one format.

use crate::model::detector_net::DetectorArch;
use crate::model::resnet::{Architecture, ConvBn, WeightTensor, Weights};
use burn::module::{Module, Param, ParamId, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct ConvBnLayer {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct Block {
    pub conv1: ConvBnLayer,
    pub conv2: ConvBnLayer,
    pub downsample: Option<ConvBnLayer>,
}

#[derive(Module, Debug)]
pub struct ResNet18 {
    pub stem: ConvBnLayer,
    pub pool: MaxPool2d,
    /// The four stages, two blocks each.
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

fn tensor<const D: usize>(t: &WeightTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), device)
}

/// A trainable parameter whose id derives from its torchvision name (FNV-1a), so a model rebuilt
/// from a checkpoint's weights keys the same optimizer state: that is what makes `--resume`
/// continue Adam's moments instead of restarting them.
fn param<const D: usize>(name: &str, value: Tensor<D>) -> Param<Tensor<D>> {
    let id = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut p = Param::from_tensor(value);
    p.id = ParamId::from(id);
    p
}

fn conv_bn_layer(spec: &ConvBn, w: &Weights, device: &Device) -> ConvBnLayer {
    let k = spec.kernel;
    let mut conv = Conv2dConfig::new([spec.in_ch, spec.out_ch], [k, k])
        .with_stride([spec.stride, spec.stride])
        .with_padding(PaddingConfig2d::Explicit(
            spec.pad, spec.pad, spec.pad, spec.pad,
        ))
        .with_bias(false)
        .init(device);
    let name = format!("{}.weight", spec.conv);
    conv.weight = param(&name, tensor(&w[&name], device));
    let mut bn = BatchNormConfig::new(spec.out_ch)
        .with_epsilon(crate::model::resnet::BN_EPSILON as f64)
        .init(device);
    let name = |f: &str| format!("{}.{f}", spec.bn);
    let g = |f: &str| tensor::<1>(&w[&name(f)], device);
    bn.gamma = param(&name("weight"), g("weight"));
    bn.beta = param(&name("bias"), g("bias"));
    bn.running_mean = RunningState::new(g("running_mean"));
    bn.running_var = RunningState::new(g("running_var"));
    ConvBnLayer { conv, bn }
}

impl ConvBnLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }

    /// Eval-mode forward that first sets the BatchNorm's running statistics to those of this
    /// batch, changing scale and shift so the eval-mode output stays exactly what it was
    /// (with a = γ/√(v+ε) and c = β − m·a, the output a·z + c is kept for the new m, v).
    fn restat(&mut self, x: Tensor<4>) -> Tensor<4> {
        let z = self.conv.forward(x);
        let [n, ch, h, w] = z.dims();
        let flat = z.clone().swap_dims(0, 1).reshape([ch, n * h * w]);
        let mean = flat.clone().mean_dim(1).reshape([ch]);
        let var = flat.var(1).reshape([ch]);
        let eps = crate::model::resnet::BN_EPSILON as f64;
        let a = self.bn.gamma.val() / (self.bn.running_var.value() + eps).sqrt();
        let c = self.bn.beta.val() - self.bn.running_mean.value() * a.clone();
        let gamma = a.clone() * (var.clone() + eps).sqrt();
        let beta = c + a * mean.clone();
        self.bn.gamma = Param::initialized(self.bn.gamma.id, gamma);
        self.bn.beta = Param::initialized(self.bn.beta.id, beta);
        self.bn.running_mean = RunningState::new(mean);
        self.bn.running_var = RunningState::new(var);
        self.bn.forward(z)
    }

    fn export(&self, spec: &ConvBn, out: &mut Weights) {
        put(
            out,
            &format!("{}.weight", spec.conv),
            self.conv.weight.val(),
        );
        put(out, &format!("{}.weight", spec.bn), self.bn.gamma.val());
        put(out, &format!("{}.bias", spec.bn), self.bn.beta.val());
        put(
            out,
            &format!("{}.running_mean", spec.bn),
            self.bn.running_mean.value(),
        );
        put(
            out,
            &format!("{}.running_var", spec.bn),
            self.bn.running_var.value(),
        );
    }
}

fn put<const D: usize>(out: &mut Weights, name: &str, t: Tensor<D>) {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float tensor");
    out.insert(name.to_string(), WeightTensor { shape, data });
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.conv1.forward(x.clone()));
        let y = self.conv2.forward(y);
        let id = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        relu(y + id)
    }
}

impl Block {
    fn restat(&mut self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.conv1.restat(x.clone()));
        let y = self.conv2.restat(y);
        let id = match &mut self.downsample {
            Some(d) => d.restat(x),
            None => x,
        };
        relu(y + id)
    }
}

impl ResNet18 {
    /// Measure every BatchNorm's input statistics on `x` (a batch of the training data, on a
    /// backend without autodiff, so BatchNorm runs in eval mode) and store them, keeping the
    /// eval-mode function unchanged. After [`crate::model::resnet::unfold_batchnorm`], this
    /// lets fine-tuning start from a folded model without its first training-mode batches
    /// normalising activations that the folded kernels never expected.
    pub fn restat_batchnorm(mut self, x: Tensor<4>) -> ResNet18 {
        let y = self.stem.restat(x);
        let mut y = self.pool.forward(relu(y));
        for b in self
            .layer1
            .iter_mut()
            .chain(&mut self.layer2)
            .chain(&mut self.layer3)
            .chain(&mut self.layer4)
        {
            y = b.restat(y);
        }
        self
    }

    /// Build from named weights (checked against the architecture first).
    pub fn from_weights(
        arch: &Architecture,
        w: &Weights,
        device: &Device,
    ) -> crate::Result<ResNet18> {
        arch.check(w)?;
        let blocks: Vec<Block> = arch
            .blocks
            .iter()
            .map(|b| Block {
                conv1: conv_bn_layer(&b.conv1, w, device),
                conv2: conv_bn_layer(&b.conv2, w, device),
                downsample: b.downsample.as_ref().map(|d| conv_bn_layer(d, w, device)),
            })
            .collect();
        let mut stages = blocks.into_iter();
        let mut take2 = || {
            vec![
                stages.next().expect("8 blocks"),
                stages.next().expect("8 blocks"),
            ]
        };
        let (layer1, layer2, layer3, layer4) = (take2(), take2(), take2(), take2());
        let mut fc = LinearConfig::new(512, arch.classes).init(device);
        // torchvision stores fc.weight as [out, in]; burn's Linear holds [in, out].
        // Transposed here rather than by a tensor view: a strided weight takes another summation
        // order in the matmul than the contiguous one training produces, and a resumed run would
        // drift from an uninterrupted one.
        let fw = &w["fc.weight"];
        let (out_f, in_f) = (fw.shape[0], fw.shape[1]);
        let t: Vec<f32> = (0..in_f * out_f)
            .map(|k| fw.data[(k % out_f) * in_f + k / out_f])
            .collect();
        fc.weight = param(
            "fc.weight",
            Tensor::from_data(TensorData::new(t, [in_f, out_f]), device),
        );
        fc.bias = Some(param("fc.bias", tensor(&w["fc.bias"], device)));
        Ok(ResNet18 {
            stem: conv_bn_layer(&arch.stem, w, device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc,
        })
    }

    pub fn export(&self, arch: &Architecture) -> Weights {
        let mut out = Weights::new();
        self.stem.export(&arch.stem, &mut out);
        let blocks = self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4);
        for (b, spec) in blocks.zip(&arch.blocks) {
            b.conv1.export(&spec.conv1, &mut out);
            b.conv2.export(&spec.conv2, &mut out);
            if let (Some(d), Some(s)) = (&b.downsample, &spec.downsample) {
                d.export(s, &mut out);
            }
        }
        put(&mut out, "fc.weight", self.fc.weight.val().transpose());
        put(
            &mut out,
            "fc.bias",
            self.fc.bias.as_ref().expect("fc has a bias").val(),
        );
        out
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.stem.forward(x)));
        let x = self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
            .fold(x, |x, b| b.forward(x));
        let x = self.avgpool.forward(x);
        let [n, c, _, _] = x.dims();
        self.fc.forward(x.reshape([n, c]))
    }

    /// Progressive unfreezing: open the head and the last `open_stages` stages (0..=5, where 5
    /// also opens the stem) for gradients, keep the rest frozen.
    pub fn with_trainable_stages(mut self, open_stages: usize) -> ResNet18 {
        let set = |m: Vec<Block>, open: bool| {
            m.into_iter()
                .map(|b| b.set_require_grad(open))
                .collect::<Vec<_>>()
        };
        self.layer4 = set(self.layer4, open_stages >= 1);
        self.layer3 = set(self.layer3, open_stages >= 2);
        self.layer2 = set(self.layer2, open_stages >= 3);
        self.layer1 = set(self.layer1, open_stages >= 4);
        self.stem = self.stem.set_require_grad(open_stages >= 5);
        self.fc = self.fc.set_require_grad(true);
        self
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

impl DetectorNet {
    pub fn from_weights(
        arch: &DetectorArch,
        w: &Weights,
        device: &Device,
    ) -> crate::Result<DetectorNet> {
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
        let mut out = Conv2dConfig::new([arch.out_in, arch.maps], [1, 1]).init(device);
        out.weight = param("out.weight", tensor(&w["out.weight"], device));
        out.bias = Some(param("out.bias", tensor(&w["out.bias"], device)));
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

    /// [`ResNet18::restat_batchnorm`] for the detector: every BatchNorm's statistics measured
    /// on the batch `x` (eval mode, no autodiff), the eval-mode maps unchanged.
    pub fn restat_batchnorm(mut self, x: Tensor<4>) -> DetectorNet {
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut x = x;
        for stage in &mut self.encoder {
            x = relu(stage.down.restat(x));
            if let Some(s) = &mut stage.same {
                x = relu(s.restat(x));
            }
            skips.push(x.clone());
        }
        for (k, step) in self.top_down.iter_mut().enumerate() {
            let up = upsample2(step.project.restat(x));
            x = relu(step.smooth.restat(up + skips[3 - k].clone()));
        }
        self.head.restat(x);
        self
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
