//! Which way up a slice is stored, read from the detector's own encoder: a logistic layer over
//! its two deepest stages' pooled activations, written into the detector file as a second output
//! (`upside_down`, one logit per image). Some archives store sagittal slices flipped top to
//! bottom (five of SPIDER's 205), and the detector, which counts levels up from the lowest
//! sacrum-like disc, then names every disc from the wrong end; its L5S1 score alone cannot tell
//! the two ways up apart, but the encoder's features can.
//!
//! The layer is fitted by `endplate fit-orientation` on slices known to be upright, each shown
//! as stored and flipped; the rest of the network and the card's other fields stay as they were.

use super::adapt::{standardise, Standardised};
use super::detector::{
    detector_plan, whole_slice_input, DetectorCard, ORIENTATION_OUTPUT as OUTPUT,
};
use super::file::{card_json, parse_proto};
use super::onnx::{attr_int, node, tensor_proto, value_info};
use super::resnet::WeightTensor;
use crate::{Error, Result, Slice};
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// The pooled encoder activations, an output only while the layer is being fitted.
pub const FEATURES: &str = "orientation_features";
/// The activations pooled: the last two encoder stages (96 and 128 channels at 1/16 and 1/32 of
/// the input), which see the whole spine and the sacrum.
const POOLED: [&str; 2] = ["enc3b.conv.out.relu", "enc4b.conv.out.relu"];
/// Every node and tensor added here starts with this, so a refit removes exactly them.
const PREFIX: &str = "orientation.";

/// The pooled features, `[N, width]`, added after every other node.
fn add_pooling(source: &str, graph: &mut pb::GraphProto) -> Result<String> {
    let mut pooled = Vec::new();
    for name in POOLED {
        if !graph
            .node
            .iter()
            .any(|n| n.output.iter().any(|o| o == name))
        {
            return Err(Error::model(
                source,
                format!(
                    "no tensor `{name}`: an orientation layer needs a detector written by \
                     `endplate train-detector`"
                ),
            ));
        }
        let out = format!("{PREFIX}{name}.pool");
        graph
            .node
            .push(node("GlobalAveragePool", &out, &[name], &out, vec![]));
        pooled.push(out);
    }
    let cat = format!("{PREFIX}concat");
    let refs: Vec<&str> = pooled.iter().map(String::as_str).collect();
    graph
        .node
        .push(node("Concat", &cat, &refs, &cat, vec![attr_int("axis", 1)]));
    let flat = format!("{PREFIX}features");
    graph.node.push(node(
        "Flatten",
        &flat,
        &[&cat],
        &flat,
        vec![attr_int("axis", 1)],
    ));
    Ok(flat)
}

/// Drop an earlier orientation layer (or features output): nodes, weights and outputs.
fn strip(graph: &mut pb::GraphProto) {
    graph.node.retain(|n| !n.name.starts_with(PREFIX));
    graph.initializer.retain(|t| !t.name.starts_with(PREFIX));
    graph
        .output
        .retain(|o| o.name != OUTPUT && o.name != FEATURES);
}

/// The detector with its pooled encoder features as second output (`FEATURES`, `[N, width]`)
/// in place of any orientation layer: what the fit reads.
pub fn with_features(source: &str, bytes: &[u8]) -> Result<pb::ModelProto> {
    // A joined corner network plays no part in which way up a slice is.
    let (mut proto, _) = super::detector::split_corner_network(parse_proto(source, bytes)?);
    let graph = proto.graph.as_mut().expect("parse_proto checked the graph");
    strip(graph);
    let flat = add_pooling(source, graph)?;
    graph
        .node
        .push(node("Identity", FEATURES, &[&flat], FEATURES, vec![]));
    graph.output.push(value_info(FEATURES, &[None, None]));
    Ok(proto)
}

/// The detector with `layer` as its orientation output, replacing any earlier one.
pub fn with_layer(source: &str, bytes: &[u8], layer: &Logistic) -> Result<pb::ModelProto> {
    let mut proto = parse_proto(source, bytes)?;
    let graph = proto.graph.as_mut().expect("parse_proto checked the graph");
    strip(graph);
    let flat = add_pooling(source, graph)?;
    let (w, b) = (format!("{PREFIX}weight"), format!("{PREFIX}bias"));
    graph.initializer.push(tensor_proto(
        &w,
        &WeightTensor {
            shape: vec![1, layer.weights.len()],
            data: layer.weights.clone(),
        },
    ));
    graph.initializer.push(tensor_proto(
        &b,
        &WeightTensor {
            shape: vec![1],
            data: vec![layer.bias],
        },
    ));
    graph.node.push(node(
        "Gemm",
        &format!("{PREFIX}gemm"),
        &[&flat, &w, &b],
        OUTPUT,
        vec![attr_int("transB", 1)],
    ));
    graph.output.push(value_info(OUTPUT, &[None, Some(1)]));
    Ok(proto)
}

/// The detector with its features output, loaded to read the pooled features of whole-slice
/// views: the first view of [`super::detector::Detector::detect`], on the same input.
pub struct FeatureReader {
    card: DetectorCard,
    plan: Arc<TypedRunnableModel>,
}

impl FeatureReader {
    pub fn new(source: &str, bytes: &[u8]) -> Result<FeatureReader> {
        let proto = with_features(source, bytes)?;
        let card = DetectorCard::from_json(source, &card_json(source, &proto)?)?;
        let (plan, _) = detector_plan(source, proto, &card, FEATURES)?;
        Ok(FeatureReader { card, plan })
    }

    pub fn card(&self) -> &DetectorCard {
        &self.card
    }

    /// The pooled features of the slice's whole-slice view.
    pub fn features(&self, slice: &Slice) -> Result<Vec<f32>> {
        let values = whole_slice_input(slice, &self.card.input);
        let s = self.card.input.size;
        let t = Tensor::from_shape(&[1, 1, s, s], &values)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let out = self
            .plan
            .run(tvec![t.into()])
            .map_err(|e| Error::Inference(e.to_string()))?;
        let v = out[1]
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        Ok(v.iter().copied().collect())
    }
}

/// A logistic layer on raw features: logit = weights · x + bias.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Logistic {
    pub fn logit(&self, x: &[f32]) -> f32 {
        self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + self.bias
    }

    /// L2-regularised logistic regression (penalty `l2` on the mean log-loss, on standardised
    /// features, bias free), by Newton's method; the standardisation is folded into
    /// the returned weights so the file needs no extra node. Each class weighs half, whatever
    /// the counts. `None` without examples of both classes.
    pub fn fit(features: &[Vec<f32>], positive: &[bool], l2: f64) -> Option<Logistic> {
        let n = features.len();
        let d = features.first()?.len();
        let pos = positive.iter().filter(|&&p| p).count();
        if pos == 0 || pos == n || positive.len() != n || features.iter().any(|f| f.len() != d) {
            return None;
        }
        let Standardised {
            mean,
            scale: sd,
            rows: z,
        } = standardise(features, d);
        let weight: Vec<f64> = positive
            .iter()
            .map(|&p| 0.5 / if p { pos } else { n - pos } as f64)
            .collect();
        // Newton's method on the weighted mean log-loss plus the penalty: the loss is convex and
        // the features few, so a handful of exact steps beats thousands of gradient ones. The
        // bias (last of theta) is not penalised.
        let mut theta = vec![0.0; d + 1];
        for _ in 0..50 {
            let mut g = vec![0.0; d + 1];
            let mut h = vec![vec![0.0; d + 1]; d + 1];
            for ((x, &y), &c) in z.iter().zip(positive).zip(&weight) {
                let s = x.iter().zip(&theta).map(|(a, b)| a * b).sum::<f64>() + theta[d];
                let p = 1.0 / (1.0 + (-s).exp());
                let (r, q) = (c * (p - f64::from(u8::from(y))), c * p * (1.0 - p));
                let xb = |j: usize| if j < d { x[j] } else { 1.0 };
                for j in 0..=d {
                    g[j] += r * xb(j);
                    let qj = q * xb(j);
                    for (k, hk) in h[j].iter_mut().enumerate() {
                        *hk += qj * xb(k);
                    }
                }
            }
            for j in 0..=d {
                let penalty = if j < d { l2 } else { 1e-9 };
                g[j] += penalty * theta[j];
                h[j][j] += penalty;
            }
            let step = solve_symmetric(h, g)?;
            let size = step.iter().map(|v| v.abs()).fold(0.0, f64::max);
            theta.iter_mut().zip(&step).for_each(|(t, s)| *t -= s);
            if size < 1e-10 {
                break;
            }
        }
        let weights: Vec<f32> = (0..d).map(|j| (theta[j] / sd[j]) as f32).collect();
        let bias = theta[d] - (0..d).map(|j| theta[j] * mean[j] / sd[j]).sum::<f64>();
        Some(Logistic {
            weights,
            bias: bias as f32,
        })
    }
}

/// `a x = b` for a symmetric positive definite `a`, by Cholesky; `None` when it is not.
fn solve_symmetric(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for j in 0..n {
        let diag = a[j][j] - (0..j).map(|k| a[j][k] * a[j][k]).sum::<f64>();
        if diag <= 0.0 || !diag.is_finite() {
            return None;
        }
        a[j][j] = diag.sqrt();
        for i in j + 1..n {
            let v = (a[i][j] - (0..j).map(|k| a[i][k] * a[j][k]).sum::<f64>()) / a[j][j];
            a[i][j] = v;
        }
    }
    for i in 0..n {
        b[i] = (b[i] - (0..i).map(|k| a[i][k] * b[k]).sum::<f64>()) / a[i][i];
    }
    for i in (0..n).rev() {
        b[i] = (b[i] - (i + 1..n).map(|k| a[k][i] * b[k]).sum::<f64>()) / a[i][i];
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system_and_refuses_an_indefinite_one() {
        let a = vec![vec![4.0, 2.0], vec![2.0, 3.0]];
        let x = solve_symmetric(a, vec![2.0, 1.0]).unwrap();
        // 4x + 2y = 2, 2x + 3y = 1: x = 0.5, y = 0.
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        assert!(solve_symmetric(vec![vec![1.0, 2.0], vec![2.0, 1.0]], vec![1.0, 1.0]).is_none());
    }

    #[test]
    fn the_fit_separates_what_is_separable_and_folds_the_scaling_in() {
        // Two features on very different scales; the class is the sign of the second one's
        // offset from 1000, the first is noise.
        let features: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                let noise = ((i * 37) % 11) as f32 / 11.0;
                let side = if i % 2 == 0 { 1.0 } else { -1.0 };
                vec![noise, 1000.0 + side * (5.0 + (i % 7) as f32)]
            })
            .collect();
        let positive: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
        let layer = Logistic::fit(&features, &positive, 0.01).unwrap();
        for (f, &p) in features.iter().zip(&positive) {
            assert_eq!(layer.logit(f) > 0.0, p, "{f:?}");
        }
        // The second feature carries the decision, the noise little (per standard deviation:
        // about 0.3 for the noise, 8 for the second feature).
        assert!(layer.weights[1] > 0.0);
        assert!(layer.weights[0].abs() * 0.3 < layer.weights[1].abs() * 8.0);
        assert!(Logistic::fit(&features, &[true; 200], 0.01).is_none());
        assert!(Logistic::fit(&[], &[], 0.01).is_none());
    }
}
