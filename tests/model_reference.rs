//! The model our writer produces, run by tract, against an independent naive forward pass of
//! the same torchvision ResNet18 computed here in f64 from the named weights.

mod common;

use endplate::model::file::BatchNorm;
use endplate::model::resnet::{Architecture, ConvBn, Weights, BN_EPSILON};
use endplate::Classifier;
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Activations `[c][y][x]` flattened.
struct Map {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

fn conv(x: &Map, weights: &Weights, c: &ConvBn) -> Map {
    let k = &weights[&format!("{}.weight", c.conv)].data;
    let ks = c.kernel;
    let ho = (x.h + 2 * c.pad - ks) / c.stride + 1;
    let wo = (x.w + 2 * c.pad - ks) / c.stride + 1;
    let mut v = vec![0.0; c.out_ch * ho * wo];
    for o in 0..c.out_ch {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = 0.0f64;
                for i in 0..c.in_ch {
                    for ky in 0..ks {
                        let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        for kx in 0..ks {
                            let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                            if ix < 0 || ix >= x.w as isize {
                                continue;
                            }
                            let wv = k[((o * c.in_ch + i) * ks + ky) * ks + kx] as f64;
                            acc += wv * x.v[(i * x.h + iy as usize) * x.w + ix as usize];
                        }
                    }
                }
                v[(o * ho + oy) * wo + ox] = acc;
            }
        }
    }
    // BatchNorm in eval mode.
    let g = |n: &str| &weights[&format!("{}.{n}", c.bn)].data;
    let (gamma, beta, mean, var) = (g("weight"), g("bias"), g("running_mean"), g("running_var"));
    for o in 0..c.out_ch {
        let s = gamma[o] as f64 / (var[o] as f64 + BN_EPSILON as f64).sqrt();
        for p in &mut v[o * ho * wo..(o + 1) * ho * wo] {
            *p = (*p - mean[o] as f64) * s + beta[o] as f64;
        }
    }
    Map {
        c: c.out_ch,
        h: ho,
        w: wo,
        v,
    }
}

fn relu(mut m: Map) -> Map {
    m.v.iter_mut().for_each(|x| *x = x.max(0.0));
    m
}

fn maxpool(x: &Map) -> Map {
    let (ho, wo) = ((x.h + 2 - 3) / 2 + 1, (x.w + 2 - 3) / 2 + 1);
    let mut v = vec![f64::NEG_INFINITY; x.c * ho * wo];
    for c in 0..x.c {
        for oy in 0..ho {
            for ox in 0..wo {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                        if iy >= 0 && ix >= 0 && (iy as usize) < x.h && (ix as usize) < x.w {
                            let p = &mut v[(c * ho + oy) * wo + ox];
                            *p = p.max(x.v[(c * x.h + iy as usize) * x.w + ix as usize]);
                        }
                    }
                }
            }
        }
    }
    Map {
        c: x.c,
        h: ho,
        w: wo,
        v,
    }
}

fn reference_forward(weights: &Weights, input: &[f32]) -> [f64; 4] {
    let arch = Architecture::resnet18(4);
    let x = Map {
        c: 3,
        h: 128,
        w: 128,
        v: input.iter().map(|&v| v as f64).collect(),
    };
    let mut x = maxpool(&relu(conv(&x, weights, &arch.stem)));
    for b in &arch.blocks {
        let y = relu(conv(&x, weights, &b.conv1));
        let y = conv(&y, weights, &b.conv2);
        let id = match &b.downsample {
            Some(d) => conv(&x, weights, d),
            None => Map {
                c: x.c,
                h: x.h,
                w: x.w,
                v: x.v.clone(),
            },
        };
        x = relu(Map {
            c: y.c,
            h: y.h,
            w: y.w,
            v: y.v.iter().zip(&id.v).map(|(a, b)| a + b).collect(),
        });
    }
    let pooled: Vec<f64> = (0..x.c)
        .map(|c| x.v[c * x.h * x.w..(c + 1) * x.h * x.w].iter().sum::<f64>() / (x.h * x.w) as f64)
        .collect();
    let fw = &weights["fc.weight"].data;
    let fb = &weights["fc.bias"].data;
    std::array::from_fn(|k| {
        fb[k] as f64
            + (0..512)
                .map(|i| fw[k * 512 + i] as f64 * pooled[i])
                .sum::<f64>()
    })
}

#[test]
fn tract_matches_a_naive_forward_pass_with_batchnorm_kept_and_folded() {
    let mut rng = SmallRng::seed_from_u64(11);
    let n = 2;
    let input: Vec<f32> = (0..n * 3 * 128 * 128)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    for bn in [BatchNorm::Keep, BatchNorm::Fold] {
        let (bytes, weights) = common::random_model(5, bn);
        let model = Classifier::from_bytes("test", &bytes).unwrap();
        let got = model.logits(input.clone(), n).unwrap();
        for i in 0..n {
            let want =
                reference_forward(&weights, &input[i * 3 * 128 * 128..(i + 1) * 3 * 128 * 128]);
            for k in 0..4 {
                let d = (got[i][k] as f64 - want[k]).abs();
                assert!(
                    d <= 1e-4,
                    "{bn:?} disc {i} class {k}: tract {} vs reference {} (diff {d})",
                    got[i][k],
                    want[k]
                );
            }
            // The test would be weak if the logits were all zero or identical.
            assert!(want.iter().any(|v| v.abs() > 1e-2), "{want:?}");
        }
        assert_ne!(got[0], got[1]);
    }
}

#[test]
fn weights_read_back_from_the_file_equal_those_written() {
    let (bytes, weights) = common::random_model(3, BatchNorm::Keep);
    let proto = endplate::model::file::parse_proto("m", &bytes).unwrap();
    let back = endplate::model::file::read_initializers("m", &proto).unwrap();
    assert_eq!(back, weights);
    let card = endplate::model::file::read_card("m", &proto).unwrap();
    assert_eq!(card.training.seed, Some(3));
}

/// Widen a compactly stored model for running and check the graph is the original one again
/// (the extra nodes gone, the rest untouched); returns (widened, original) weights.
fn widened_and_original(
    stored: tract_onnx::pb::ModelProto,
    original: &tract_onnx::pb::ModelProto,
) -> (
    endplate::model::resnet::Weights,
    endplate::model::resnet::Weights,
) {
    let wide = endplate::model::storage::widen_stored_weights(stored);
    assert_eq!(
        wide.graph.as_ref().unwrap().node,
        original.graph.as_ref().unwrap().node,
        "the storage nodes are gone, the rest untouched"
    );
    let w = endplate::model::file::read_initializers("wide", &wide).unwrap();
    let w0 = endplate::model::file::read_initializers("m", original).unwrap();
    assert_eq!(w.len(), w0.len(), "no leftover storage tensors");
    (w, w0)
}

#[test]
fn float16_storage_keeps_the_network_and_halves_the_file() {
    let (bytes, _) = common::random_model(8, BatchNorm::Fold);
    let proto = endplate::model::file::parse_proto("m", &bytes).unwrap();
    let halved = endplate::model::storage::half_storage(proto.clone());
    let half = prost::Message::encode_to_vec(&halved);

    // Widened for running: the original graph back, every weight its float16 rounding.
    let (w, w0) = widened_and_original(halved, &proto);
    for (name, t) in &w0 {
        let rounded: Vec<f32> = t
            .data
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        assert_eq!(w[name].data, rounded, "{name}");
    }
    assert!(
        half.len() < bytes.len() * 52 / 100,
        "{} vs {}",
        half.len(),
        bytes.len()
    );
    let (full, small) = (
        Classifier::from_bytes("full", &bytes).unwrap(),
        Classifier::from_bytes("half", &half).unwrap(),
    );
    assert_eq!(small.card(), full.card());
    let mut rng = SmallRng::seed_from_u64(2);
    let input: Vec<f32> = (0..2 * 3 * 128 * 128)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let (a, b) = (
        full.logits(input.clone(), 2).unwrap(),
        small.logits(input, 2).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        for k in 0..4 {
            // float16 keeps ~3 significant digits per weight.
            assert!(
                (x[k] - y[k]).abs() <= 2e-2 * x[k].abs().max(1.0),
                "{x:?} vs {y:?}"
            );
        }
    }
}

#[test]
fn int8_storage_quarters_the_weights_and_dequantizes_at_load() {
    let (bytes, _) = common::random_model(9, BatchNorm::Fold);
    let proto = endplate::model::file::parse_proto("m", &bytes).unwrap();
    let small = endplate::model::storage::int8_storage(proto.clone());
    let encoded = prost::Message::encode_to_vec(&small);
    assert!(
        encoded.len() < bytes.len() * 27 / 100,
        "{} vs {}",
        encoded.len(),
        bytes.len()
    );
    // Scales and zero points are dropped with the DequantizeLinear nodes.
    let (w, w0) = widened_and_original(small, &proto);

    for (name, t) in &w0 {
        if t.shape.len() < 2 {
            assert_eq!(w[name].data, t.data, "{name}: biases stay float32");
            continue;
        }
        // Each output channel's error is at most half its quantization step.
        let per = t.data.len() / t.shape[0];
        for (c, (a, b)) in t.data.chunks(per).zip(w[name].data.chunks(per)).enumerate() {
            let step = a.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 0.5 * step * 1.0001,
                    "{name}[{c}]: {x} vs {y}"
                );
            }
        }
    }
    // And it runs: the same classes on random input as the float32 model.
    let (full, q) = (
        Classifier::from_bytes("full", &bytes).unwrap(),
        Classifier::from_bytes("int8", &encoded).unwrap(),
    );
    let mut rng = SmallRng::seed_from_u64(4);
    let input: Vec<f32> = (0..3 * 128 * 128)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let (a, b) = (
        full.logits(input.clone(), 1).unwrap(),
        q.logits(input, 1).unwrap(),
    );
    for k in 0..4 {
        assert!(
            (a[0][k] - b[0][k]).abs() <= 0.05 * a[0][k].abs().max(1.0),
            "{a:?} vs {b:?}"
        );
    }
}
