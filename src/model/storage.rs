//! Smaller model files for the page's download: float16 or int8 storage of the weights, each
//! with the nodes that restore float32 at run time, and the inverse that the classifier applies
//! once at load so a compact file runs as fast as a float32 one. Whether a model tolerates the
//! rounding must be checked on data (`cargo run --release --example compact_model`).

use super::onnx::{attr_int, f32s_le, node};
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// Store every float initializer as float16, each followed by a `Cast` back to float32: half
/// the download for the page, the same float32 arithmetic at run time (tract does not fold the
/// casts, so the classifier widens the weights once at load: [`widen_stored_weights`]). Whether
/// a model tolerates it must be checked on data:
/// `cargo run --release --example compact_model -- f16 ...` does.
pub fn half_storage(mut proto: pb::ModelProto) -> pb::ModelProto {
    let Some(graph) = proto.graph.as_mut() else {
        return proto;
    };
    let mut casts = Vec::new();
    for t in graph.initializer.iter_mut() {
        if t.data_type != DataType::Float as i32 {
            continue;
        }
        let values: Vec<f32> = if t.raw_data.is_empty() {
            std::mem::take(&mut t.float_data)
        } else {
            f32s_le(&t.raw_data)
        };
        t.raw_data = values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        t.data_type = DataType::Float16 as i32;
        let renamed = format!("{}.f16", t.name);
        let original = std::mem::replace(&mut t.name, renamed);
        let mut cast = node(
            "Cast",
            &format!("{original}.cast"),
            &[&t.name],
            &original,
            vec![attr_int("to", DataType::Float as i64)],
        );
        cast.domain = String::new();
        casts.push(cast);
    }
    casts.append(&mut graph.node);
    graph.node = casts;
    proto
}

/// The inverse of [`half_storage`] and [`int8_storage`], applied before running: each float16
/// initializer whose only use is a `Cast` to float32 becomes a float32 initializer under the
/// cast's output name, and the cast goes; each constant `DequantizeLinear` likewise. tract does
/// not fold such casts away (measured native, one disc: 41 ms with the casts, 24 ms without),
/// so a half-stored file would otherwise pay for its smaller download on every run. The values
/// are exactly those the casts would produce.
pub fn widen_stored_weights(mut proto: pb::ModelProto) -> pb::ModelProto {
    let Some(graph) = proto.graph.as_mut() else {
        return proto;
    };
    let mut uses: std::collections::HashMap<&str, usize> = Default::default();
    for n in &graph.node {
        for i in &n.input {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    let halves: std::collections::HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.data_type == DataType::Float16 as i32 && uses.get(t.name.as_str()) == Some(&1)
        })
        .map(|(k, t)| (t.name.clone(), k))
        .collect();
    let to_float = |n: &pb::NodeProto| {
        n.attribute
            .iter()
            .any(|a| a.name == "to" && a.i == DataType::Float as i64)
    };
    let nodes = std::mem::take(&mut graph.node);
    for n in nodes {
        let widened = (n.op_type == "Cast" && n.input.len() == 1 && n.output.len() == 1)
            .then(|| halves.get(&n.input[0]))
            .flatten()
            .filter(|_| to_float(&n));
        match widened {
            Some(&k) => {
                let t = &mut graph.initializer[k];
                // float16 values sit in raw_data, or one per int32_data entry.
                let bits: Vec<u16> = if t.raw_data.is_empty() {
                    t.int32_data.iter().map(|&v| v as u16).collect()
                } else {
                    t.raw_data
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect()
                };
                let mut floats = vec![0u8; 4 * bits.len()];
                for (out, b) in floats.chunks_exact_mut(4).zip(bits) {
                    out.copy_from_slice(&f16_bits_to_f32(b).to_le_bytes());
                }
                t.int32_data.clear();
                t.raw_data = floats;
                t.data_type = DataType::Float as i32;
                t.name = n.output[0].clone();
            }
            None => graph.node.push(n),
        }
    }
    widen_int8_storage(graph);
    proto
}

/// float16 bits to float32, exactly, without branches: the page widens a ResNet18's 11 million
/// weights at every model load, and `half`'s per-value conversion (branchy, in software on wasm)
/// took a quarter of that load. The exponent is rebased by one multiplication, which also
/// normalises subnormals; infinities and NaNs, which the multiplication leaves at 2^16 or more,
/// get the all-ones exponent back. Branch-free, so the compiler vectorises the loop.
fn f16_bits_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let scaled = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits((254 - 15) << 23);
    let inf_nan = if scaled >= 65536.0 { 0xff << 23 } else { 0 };
    f32::from_bits(scaled.to_bits() | inf_nan | ((h & 0x8000) << 16))
}

/// Store every float weight of rank 2 or more (convolutions, the head) as int8 with one
/// symmetric scale per output channel, each followed by a `DequantizeLinear` (opset 13, axis 0)
/// back to float32; biases stay float32. A quarter of the float32 download. As with
/// [`half_storage`], the classifier dequantizes once at load ([`widen_stored_weights`] handles
/// both), and whether a model tolerates it must be checked on data:
/// `cargo run --release --example compact_model -- int8 ...` does.
pub fn int8_storage(mut proto: pb::ModelProto) -> pb::ModelProto {
    let Some(graph) = proto.graph.as_mut() else {
        return proto;
    };
    let mut nodes = Vec::new();
    let mut extra = Vec::new();
    for t in graph.initializer.iter_mut() {
        if t.data_type != DataType::Float as i32 || t.dims.len() < 2 || t.dims[0] <= 0 {
            continue;
        }
        let values: Vec<f32> = if t.raw_data.is_empty() {
            std::mem::take(&mut t.float_data)
        } else {
            f32s_le(&t.raw_data)
        };
        let channels = t.dims[0] as usize;
        let per = values.len() / channels;
        let scales: Vec<f32> = values
            .chunks_exact(per)
            .map(|c| {
                c.iter()
                    .fold(0f32, |m, v| m.max(v.abs()))
                    .max(f32::MIN_POSITIVE)
                    / 127.0
            })
            .collect();
        t.raw_data = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v / scales[i / per]).round().clamp(-127.0, 127.0) as i8 as u8)
            .collect();
        t.float_data.clear();
        t.data_type = DataType::Int8 as i32;
        let renamed = format!("{}.q", t.name);
        let original = std::mem::replace(&mut t.name, renamed);
        let (scale, zero) = (format!("{original}.scale"), format!("{original}.zero"));
        extra.push(pb::TensorProto {
            name: scale.clone(),
            dims: vec![channels as i64],
            data_type: DataType::Float as i32,
            raw_data: scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
            ..Default::default()
        });
        extra.push(pb::TensorProto {
            name: zero.clone(),
            dims: vec![channels as i64],
            data_type: DataType::Int8 as i32,
            raw_data: vec![0; channels],
            ..Default::default()
        });
        nodes.push(node(
            "DequantizeLinear",
            &format!("{original}.dequantize"),
            &[&t.name, &scale, &zero],
            &original,
            vec![attr_int("axis", 0)],
        ));
    }
    graph.initializer.extend(extra);
    nodes.append(&mut graph.node);
    graph.node = nodes;
    proto
}

/// Undo [`int8_storage`] on the graph: a `DequantizeLinear` of an int8 initializer along axis 0
/// with initializer scales and zero points becomes the float32 initializer it computes.
fn widen_int8_storage(graph: &mut pb::GraphProto) {
    let index: std::collections::HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(k, t)| (t.name.clone(), k))
        .collect();
    let mut gone = std::collections::HashSet::new();
    let nodes = std::mem::take(&mut graph.node);
    for n in nodes {
        let axis0 = n
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .is_none_or(|a| a.i == 0);
        let inputs: Option<Vec<usize>> = n.input.iter().map(|i| index.get(i).copied()).collect();
        let ok = n.op_type == "DequantizeLinear" && axis0 && n.output.len() == 1;
        let Some(ins) = inputs.filter(|ins| ok && (2..=3).contains(&ins.len())) else {
            graph.node.push(n);
            continue;
        };
        let (q, s) = (&graph.initializer[ins[0]], &graph.initializer[ins[1]]);
        let scales = if s.raw_data.is_empty() {
            s.float_data.clone()
        } else {
            f32s_le(&s.raw_data)
        };
        let zeros: Vec<i8> = ins.get(2).map_or(vec![0; scales.len()], |&z| {
            graph.initializer[z]
                .raw_data
                .iter()
                .map(|&b| b as i8)
                .collect()
        });
        if q.data_type != DataType::Int8 as i32
            || q.raw_data.is_empty()
            || scales.is_empty()
            || zeros.len() != scales.len()
            || q.raw_data.len() % scales.len() != 0
        {
            graph.node.push(n);
            continue;
        }
        let per = q.raw_data.len() / scales.len();
        let values: Vec<u8> = q
            .raw_data
            .iter()
            .enumerate()
            .flat_map(|(i, &b)| {
                let c = i / per;
                ((b as i8 as f32 - zeros[c] as f32) * scales[c]).to_le_bytes()
            })
            .collect();
        let dims = q.dims.clone();
        gone.extend(ins.iter().copied());
        graph.initializer.push(pb::TensorProto {
            name: n.output[0].clone(),
            dims,
            data_type: DataType::Float as i32,
            raw_data: values,
            ..Default::default()
        });
    }
    let mut k = 0;
    graph.initializer.retain(|_| {
        k += 1;
        !gone.contains(&(k - 1))
    });
}

#[cfg(test)]
mod tests {
    use super::f16_bits_to_f32;

    #[test]
    fn widening_matches_half_for_every_float16() {
        for bits in 0..=u16::MAX {
            let want = half::f16::from_bits(bits).to_f32();
            let got = f16_bits_to_f32(bits);
            if want.is_nan() {
                assert!(got.is_nan(), "{bits:#06x}: {got} is not NaN");
            } else {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{bits:#06x}: {got} vs {want}"
                );
            }
        }
    }
}
