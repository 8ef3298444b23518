//! The classifier's last layer as its file holds it: the `Gemm` that turns the pooled features
//! into `logits`. Adaptation reads it (the anchor of the refit), replaces it (the adapted file
//! keeps every other byte of the base model, float16 storage included) and needs the pooled
//! features as a graph output, which [`expose_features`] adds to a file written before the
//! writer did so.

use super::adapt::Layer;
use super::card::{FEATURES_NAME, OUTPUT_NAME};
use super::file::read_initializers;
use super::onnx::{attr_int, node, tensor_proto, value_info};
use super::resnet::WeightTensor;
use super::storage::widen_stored_weights;
use crate::error::{Error, Result};
use std::collections::HashSet;
use tract_onnx::pb;

/// The names the adapted layer's weights get in the file.
const ADAPTED_WEIGHT: &str = "fc.adapted.weight";
const ADAPTED_BIAS: &str = "fc.adapted.bias";

fn graph<'p>(source: &str, proto: &'p pb::ModelProto) -> Result<&'p pb::GraphProto> {
    proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::model(source, "not an ONNX model: it has no graph"))
}

/// The node that writes `logits`, which must be a plain `Gemm` (features x W^T + b).
fn logits_gemm(source: &str, graph: &pb::GraphProto) -> Result<usize> {
    let k = graph
        .node
        .iter()
        .position(|n| n.output.iter().any(|o| o == OUTPUT_NAME))
        .ok_or_else(|| Error::model(source, format!("no node writes `{OUTPUT_NAME}`")))?;
    let n = &graph.node[k];
    let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
    let plain = n.op_type == "Gemm"
        && n.input.len() == 3
        && attr("transA").is_none_or(|a| a.i == 0)
        && attr("alpha").is_none_or(|a| a.f == 1.0)
        && attr("beta").is_none_or(|a| a.f == 1.0);
    if !plain {
        return Err(Error::model(
            source,
            format!(
                "`{OUTPUT_NAME}` comes from a `{}` node, not a plain Gemm (features x W + b): \
                 its last layer cannot be adapted; adapt a model written by `endplate train`",
                n.op_type
            ),
        ));
    }
    Ok(k)
}

/// The refusal for a file without the `features` output, with both fixes.
pub fn no_features(source: &str) -> Error {
    Error::model(
        source,
        format!(
            "this model file has no `{FEATURES_NAME}` output (the pooled features that adaptation \
             refits the last layer on): it still classifies, but cannot be adapted; add the output \
             with `cargo run --example expose_features -- MODEL.onnx`, or train the model with \
             this version of endplate"
        ),
    )
}

/// Whether the graph lists the pooled features as an output.
pub fn has_features(proto: &pb::ModelProto) -> bool {
    proto
        .graph
        .as_ref()
        .is_some_and(|g| g.output.iter().any(|o| o.name == FEATURES_NAME))
}

/// Add the input of the last layer as the graph output `features` ([N, width]), through an
/// `Identity` node, leaving every weight and the card as they are: the logits do not change.
pub fn expose_features(source: &str, proto: &mut pb::ModelProto) -> Result<()> {
    if has_features(proto) {
        return Err(Error::model(
            source,
            format!("it already has a `{FEATURES_NAME}` output"),
        ));
    }
    let width = read_last_layer(source, proto)?.weights[0].len();
    let graph = proto
        .graph
        .as_mut()
        .expect("read_last_layer checked the graph");
    let pooled = graph.node[logits_gemm(source, graph)?].input[0].clone();
    graph.node.push(node(
        "Identity",
        FEATURES_NAME,
        &[&pooled],
        FEATURES_NAME,
        vec![],
    ));
    graph
        .output
        .push(value_info(FEATURES_NAME, &[None, Some(width as i64)]));
    Ok(())
}

/// The last layer's weights and bias, whatever their storage (float32, or float16 / int8 with
/// the nodes that widen them).
pub fn read_last_layer(source: &str, proto: &pb::ModelProto) -> Result<Layer> {
    let graph = graph(source, proto)?;
    let gemm = &graph.node[logits_gemm(source, graph)?];
    let trans_b = gemm
        .attribute
        .iter()
        .any(|a| a.name == "transB" && a.i == 1);
    let (w_name, b_name) = (&gemm.input[1], &gemm.input[2]);
    // Only the two tensors and the nodes that make them, widened as the classifier does.
    let makers: Vec<pb::NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.output.iter().any(|o| o == w_name || o == b_name))
        .cloned()
        .collect();
    let needed: HashSet<&String> = makers
        .iter()
        .flat_map(|n| &n.input)
        .chain([w_name, b_name])
        .collect();
    let small = pb::ModelProto {
        graph: Some(pb::GraphProto {
            node: makers.clone(),
            initializer: graph
                .initializer
                .iter()
                .filter(|t| needed.contains(&t.name))
                .cloned()
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let weights = read_initializers(source, &widen_stored_weights(small))?;
    let missing = |name: &str| {
        Error::model(
            source,
            format!("the last layer's `{name}` is not a constant float tensor the reader knows"),
        )
    };
    let w = weights.get(w_name).ok_or_else(|| missing(w_name))?;
    let b = weights.get(b_name).ok_or_else(|| missing(b_name))?;
    let (rows, cols) = match w.shape[..] {
        [r, c] => (r, c),
        _ => return Err(missing(w_name)),
    };
    let (classes, width) = if trans_b { (rows, cols) } else { (cols, rows) };
    if b.data.len() != classes {
        return Err(missing(b_name));
    }
    let at = |k: usize, j: usize| {
        if trans_b {
            w.data[k * cols + j]
        } else {
            w.data[j * cols + k]
        }
    };
    Ok(Layer {
        weights: (0..classes)
            .map(|k| (0..width).map(|j| at(k, j) as f64).collect())
            .collect(),
        bias: b.data.iter().map(|&v| v as f64).collect(),
    })
}

/// The same model with `layer` as its last layer (float32, transB), the old layer's tensors and
/// the nodes that only they fed removed.
pub fn replace_last_layer(
    source: &str,
    mut proto: pb::ModelProto,
    layer: &Layer,
) -> Result<pb::ModelProto> {
    let old = read_last_layer(source, &proto)?;
    if old.weights.len() != layer.weights.len() || old.weights[0].len() != layer.weights[0].len() {
        return Err(Error::Invalid(format!(
            "the new last layer is {} x {}, the model's is {} x {}",
            layer.weights.len(),
            layer.weights[0].len(),
            old.weights.len(),
            old.weights[0].len()
        )));
    }
    let graph = proto
        .graph
        .as_mut()
        .expect("read_last_layer checked the graph");
    let k = logits_gemm(source, graph)?;
    let gemm = &mut graph.node[k];
    gemm.input.truncate(1);
    gemm.input
        .extend([ADAPTED_WEIGHT.to_string(), ADAPTED_BIAS.to_string()]);
    gemm.attribute = vec![attr_int("transB", 1)];
    graph
        .initializer
        .retain(|t| t.name != ADAPTED_WEIGHT && t.name != ADAPTED_BIAS);
    let (classes, width) = (layer.weights.len(), layer.weights[0].len());
    graph.initializer.push(tensor_proto(
        ADAPTED_WEIGHT,
        &WeightTensor {
            shape: vec![classes, width],
            data: layer.weights.iter().flatten().map(|&v| v as f32).collect(),
        },
    ));
    graph.initializer.push(tensor_proto(
        ADAPTED_BIAS,
        &WeightTensor {
            shape: vec![classes],
            data: layer.bias.iter().map(|&v| v as f32).collect(),
        },
    ));
    prune(graph);
    Ok(proto)
}

/// Drop nodes none of whose outputs is used, then initializers nothing uses.
fn prune(graph: &mut pb::GraphProto) {
    loop {
        let used: HashSet<String> = graph
            .node
            .iter()
            .flat_map(|n| n.input.iter().cloned())
            .chain(graph.output.iter().map(|o| o.name.clone()))
            .collect();
        let before = graph.node.len();
        graph
            .node
            .retain(|n| n.output.iter().any(|o| used.contains(o)));
        if graph.node.len() == before {
            graph.initializer.retain(|t| used.contains(&t.name));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::card::ModelCard;
    use crate::model::file::{parse_proto, write_model, BatchNorm};
    use crate::model::resnet::Architecture;
    use crate::model::storage::half_storage;
    use crate::Classifier;
    use prost::Message;

    fn model() -> pb::ModelProto {
        let arch = Architecture::resnet18(4);
        let w = arch.random_weights(3);
        let bytes = write_model(&arch, &w, &ModelCard::untrained("t", 3), BatchNorm::Fold).unwrap();
        parse_proto("t", &bytes).unwrap()
    }

    #[test]
    fn replaced_layer_reads_back_and_drops_the_old_tensors() {
        let proto = half_storage(model());
        let old = read_last_layer("t", &proto).unwrap();
        assert_eq!((old.weights.len(), old.weights[0].len()), (4, 512));
        let mut new = old.clone();
        new.weights[2][7] = 0.25;
        new.bias[1] = -1.5;
        let out = replace_last_layer("t", proto.clone(), &new).unwrap();
        let back = read_last_layer("t", &out).unwrap();
        assert_eq!(back, new);
        let g = out.graph.as_ref().unwrap();
        assert!(!g
            .initializer
            .iter()
            .any(|t| t.name.starts_with("fc.weight")));
        assert_eq!(g.node.len(), proto.graph.as_ref().unwrap().node.len() - 2);
        // Replacing twice keeps one adapted layer.
        let twice = replace_last_layer("t", out, &old).unwrap();
        let g = twice.graph.as_ref().unwrap();
        assert_eq!(
            g.initializer
                .iter()
                .filter(|t| t.name == ADAPTED_WEIGHT)
                .count(),
            1
        );
        assert_eq!(read_last_layer("t", &twice).unwrap(), old);
        Classifier::from_bytes("t", &twice.encode_to_vec()).unwrap();
    }

    #[test]
    fn exposing_twice_is_refused() {
        let mut p = model();
        assert!(has_features(&p));
        let e = expose_features("t", &mut p).unwrap_err().to_string();
        assert!(e.contains("already"), "{e}");
    }
}
