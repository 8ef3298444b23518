//! The few ONNX protobuf messages endplate builds by hand (attributes, nodes, float tensors,
//! value infos) and the little-endian float reading, shared by the model writer ([`super::file`])
//! and the storage transforms ([`super::storage`]) so the two cannot disagree on the encoding.

use super::resnet::WeightTensor;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

pub(super) fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}
/// A whole model file: `graph` with `card` as JSON under `endplate.card`, ONNX IR 8 and our
/// opset; what every model endplate writes, classifier or detector.
pub(super) fn model_bytes(
    graph: pb::GraphProto,
    card: &impl serde::Serialize,
) -> crate::Result<Vec<u8>> {
    use prost::Message;
    let card_json =
        serde_json::to_string(card).map_err(|e| crate::Error::Invalid(e.to_string()))?;
    Ok(pb::ModelProto {
        ir_version: 8,
        producer_name: "endplate".into(),
        producer_version: crate::VERSION.into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: super::card::OPSET,
        }],
        graph: Some(graph),
        metadata_props: vec![pb::StringStringEntryProto {
            key: super::card::CARD_KEY.into(),
            value: card_json,
        }],
        ..Default::default()
    }
    .encode_to_vec())
}

pub(super) fn attr_string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub(super) fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}
pub(super) fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}
pub(super) fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}
pub(super) fn tensor_proto(name: &str, t: &WeightTensor) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}
pub(super) fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => Value::DimValue(*v),
                None => Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// ONNX `raw_data` of a float tensor: little-endian f32.
pub(super) fn f32s_le(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
