//! The self-describing ONNX model file: a torchvision-layout ResNet18 written from named weight
//! tensors with the card in `metadata_props` and the pooled features as a second output, and the
//! reading side that validates it. Uses the protobuf types tract-onnx already carries, so writing
//! needs no further dependency.

use super::card::{
    ModelCard, CARD_KEY, FEATURES_NAME, FEATURES_SIZE, INPUT_NAME, INPUT_SIZE, OUTPUT_NAME,
};
use super::onnx::{
    attr_float, attr_int, attr_ints, f32s_le, model_bytes, node, tensor_proto, value_info,
};
use super::resnet::{fold_batchnorm, Architecture, ConvBn, WeightTensor, Weights, BN_EPSILON};
use crate::error::{Error, Result};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// Whether BatchNorm survives as its own node (what a training framework exports) or is folded
/// into the convolutions (smaller, faster, identical in eval mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchNorm {
    Keep,
    Fold,
}

/// Builds the graph node by node, adding the initializers each node uses.
pub(super) struct GraphBuilder<'w> {
    weights: &'w Weights,
    batchnorm: BatchNorm,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

impl<'w> GraphBuilder<'w> {
    pub(super) fn new(weights: &'w Weights, batchnorm: BatchNorm) -> GraphBuilder<'w> {
        GraphBuilder {
            weights,
            batchnorm,
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }
    pub(super) fn push(&mut self, n: pb::NodeProto) {
        self.nodes.push(n);
    }
    pub(super) fn finish(self) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
        (self.nodes, self.initializers)
    }
    pub(super) fn init(&mut self, name: &str, t: WeightTensor) {
        self.initializers.push(tensor_proto(name, &t));
    }
    pub(super) fn init_named(&mut self, name: &str) {
        self.initializers
            .push(tensor_proto(name, &self.weights[name]));
    }

    /// Conv + BN (+ ReLU); returns the output's name.
    pub(super) fn conv_bn(&mut self, c: &ConvBn, input: &str, relu: bool) -> String {
        let k = c.kernel as i64;
        let attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("strides", &[c.stride as i64; 2]),
            attr_ints("pads", &[c.pad as i64; 4]),
        ];
        let out = match self.batchnorm {
            BatchNorm::Fold => {
                let (w, b) = fold_batchnorm(self.weights, c);
                let (wn, bn) = (format!("{}.weight", c.conv), format!("{}.bias", c.conv));
                self.init(&wn, w);
                self.init(&bn, b);
                let out = format!("{}.out", c.conv);
                self.nodes
                    .push(node("Conv", &c.conv, &[input, &wn, &bn], &out, attrs));
                out
            }
            BatchNorm::Keep => {
                let wn = format!("{}.weight", c.conv);
                self.init_named(&wn);
                let conv_out = format!("{}.out", c.conv);
                self.nodes
                    .push(node("Conv", &c.conv, &[input, &wn], &conv_out, attrs));
                let names: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|f| format!("{}.{f}", c.bn))
                    .collect();
                for n in &names {
                    self.init_named(n);
                }
                let out = format!("{}.out", c.bn);
                let inputs: Vec<&str> = std::iter::once(conv_out.as_str())
                    .chain(names.iter().map(|s| s.as_str()))
                    .collect();
                self.nodes.push(node(
                    "BatchNormalization",
                    &c.bn,
                    &inputs,
                    &out,
                    vec![
                        attr_float("epsilon", BN_EPSILON),
                        attr_float("momentum", 0.9),
                    ],
                ));
                out
            }
        };
        if relu {
            let r = format!("{out}.relu");
            self.nodes.push(node("Relu", &r, &[&out], &r, vec![]));
            r
        } else {
            out
        }
    }
}

/// Encode a ResNet18 with `weights` and `card` as ONNX bytes.
pub fn write_model(
    arch: &Architecture,
    weights: &Weights,
    card: &ModelCard,
    batchnorm: BatchNorm,
) -> Result<Vec<u8>> {
    arch.check(weights)?;
    let mut g = GraphBuilder {
        weights,
        batchnorm,
        nodes: Vec::new(),
        initializers: Vec::new(),
    };
    let x = g.conv_bn(&arch.stem, INPUT_NAME, true);
    g.nodes.push(node(
        "MaxPool",
        "maxpool",
        &[&x],
        "maxpool.out",
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ],
    ));
    let mut x = "maxpool.out".to_string();
    for block in &arch.blocks {
        let y = g.conv_bn(&block.conv1, &x, true);
        let y = g.conv_bn(&block.conv2, &y, false);
        let identity = match &block.downsample {
            Some(d) => g.conv_bn(d, &x, false),
            None => x.clone(),
        };
        let prefix = block.conv1.conv.trim_end_matches(".conv1");
        let sum = format!("{prefix}.add");
        g.nodes
            .push(node("Add", &sum, &[&y, &identity], &sum, vec![]));
        let relu = format!("{prefix}.relu");
        g.nodes.push(node("Relu", &relu, &[&sum], &relu, vec![]));
        x = relu;
    }
    g.nodes.push(node(
        "GlobalAveragePool",
        "avgpool",
        &[&x],
        "avgpool.out",
        vec![],
    ));
    g.nodes.push(node(
        "Flatten",
        "flatten",
        &["avgpool.out"],
        FEATURES_NAME,
        vec![attr_int("axis", 1)],
    ));
    g.init_named("fc.weight");
    g.init_named("fc.bias");
    g.nodes.push(node(
        "Gemm",
        "fc",
        &[FEATURES_NAME, "fc.weight", "fc.bias"],
        OUTPUT_NAME,
        vec![attr_int("transB", 1)],
    ));

    let s = INPUT_SIZE as i64;
    let graph = pb::GraphProto {
        name: "endplate-resnet18".into(),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info(INPUT_NAME, &[None, Some(3), Some(s), Some(s)])],
        // The pooled features too, so the last layer can be refitted (`crate::adapt`).
        output: vec![
            value_info(OUTPUT_NAME, &[None, Some(arch.classes as i64)]),
            value_info(FEATURES_NAME, &[None, Some(FEATURES_SIZE as i64)]),
        ],
        ..Default::default()
    };
    model_bytes(graph, card)
}

/// Decode ONNX bytes into the protobuf model, with a message a user can act on.
pub fn parse_proto(source_name: &str, bytes: &[u8]) -> Result<pb::ModelProto> {
    let proto = pb::ModelProto::decode(bytes).map_err(|e| {
        Error::model(
            source_name,
            format!("not an ONNX file (protobuf decoding failed: {e})"),
        )
    })?;
    if proto.graph.is_none() {
        return Err(Error::model(
            source_name,
            "not an ONNX model: it has no graph",
        ));
    }
    Ok(proto)
}

/// The card stored in a parsed model, validated.
pub fn read_card(source_name: &str, proto: &pb::ModelProto) -> Result<ModelCard> {
    ModelCard::from_json(source_name, &card_json(source_name, proto)?)
}

/// The file's bytes with `card` in place of the card it holds (weights untouched).
pub fn encode_with_card(
    source_name: &str,
    mut proto: pb::ModelProto,
    card: &impl serde::Serialize,
) -> Result<Vec<u8>> {
    let json = serde_json::to_string(card).map_err(|e| Error::Invalid(e.to_string()))?;
    let entry = proto
        .metadata_props
        .iter_mut()
        .find(|e| e.key == CARD_KEY)
        .ok_or_else(|| Error::model(source_name, format!("no `{CARD_KEY}` entry to replace")))?;
    entry.value = json;
    Ok(proto.encode_to_vec())
}

/// The card's JSON text, whatever the model's kind.
pub fn card_json(source_name: &str, proto: &pb::ModelProto) -> Result<String> {
    let entry = proto.metadata_props.iter().find(|e| e.key == CARD_KEY).ok_or_else(|| {
        Error::model(
            source_name,
            format!("no model card: metadata_props has no `{CARD_KEY}` entry (an ONNX file written by `endplate train` has one)"),
        )
    })?;
    Ok(entry.value.clone())
}

/// The named weights of a model file on disk (`--init`, checkpoints).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_weights(path: &std::path::Path) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let name = path.display().to_string();
    read_initializers(&name, &parse_proto(&name, &bytes)?)
}

/// Float initializers by name, e.g. the weights of a torchvision ResNet18 exported to ONNX
/// (`torch.onnx.export(..., do_constant_folding=False)` keeps the parameter names).
pub fn read_initializers(source_name: &str, proto: &pb::ModelProto) -> Result<Weights> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::model(source_name, "no graph"))?;
    let mut out = Weights::new();
    for t in &graph.initializer {
        if t.data_type != DataType::Float as i32 {
            continue;
        }
        let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if !t.raw_data.is_empty() {
            f32s_le(&t.raw_data)
        } else {
            t.float_data.clone()
        };
        if data.len() != n {
            return Err(Error::model(
                source_name,
                format!(
                    "initializer `{}` has {} values for shape {:?}",
                    t.name,
                    data.len(),
                    shape
                ),
            ));
        }
        out.insert(t.name.clone(), WeightTensor { shape, data });
    }
    Ok(out)
}
