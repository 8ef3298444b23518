//! Refitting the last layer to one's own discs: a class-balanced, L2-regularised multinomial
//! logistic regression on the backbone's pooled features, pulled towards the base model's layer
//! (so few discs move it little). A label is the set of classes it admits, as in training: a
//! `lesion` disc pulls P(normal) down and leaves the split among the lesion types to the base.
//!
//! The fit standardises the features (so the pull weighs every feature alike and one step size
//! suits all), then runs a fixed number of Nesterov-accelerated gradient steps in `f64` with the
//! step from the loss's curvature bound: no randomness and no tolerance test, so the page and
//! the CLI compute the same layer from the same features. The procedure around it (held-out
//! split, check, calibration, file) is `crate::adapt`.

use crate::class::{Class, Label};
use crate::error::{Error, Result};

/// The fewest labelled discs of each label used that adaptation accepts: a quarter or so is
/// held out to check it, and the fit keeps at least [`MIN_FIT_PER_LABEL`].
pub const MIN_PER_LABEL: usize = 8;
/// The fewest discs of each label the fit itself keeps after the held-out split.
pub const MIN_FIT_PER_LABEL: usize = 6;

/// How hard the fit is pulled to the base layer, and how long it runs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FitOptions {
    /// `lambda / 2 * |W - W0|^2` on standardised features, against a loss that is a weighted
    /// mean over discs (each label weighing the same in total).
    pub lambda: f64,
    pub steps: usize,
}

/// `lambda` 0.2: of 0.002, 0.02 and 0.2, the best or near it on held-out subjects of three
/// shifted phantom styles (tests/adapt.rs's and two others), and the most cautious with few discs.
impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            lambda: 0.2,
            steps: 300,
        }
    }
}

/// A last layer: `weights[k]` for class `k`, then its bias; `logits = W x + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
}

impl Layer {
    pub fn logits(&self, x: &[f32]) -> Vec<f64> {
        self.weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| b + w.iter().zip(x).map(|(w, &x)| w * x as f64).sum::<f64>())
            .collect()
    }

    /// The logits as the model file would give them (four classes).
    pub fn logits4(&self, x: &[f32]) -> [f32; 4] {
        let l = self.logits(x);
        std::array::from_fn(|k| l.get(k).copied().unwrap_or(0.0) as f32)
    }
}

/// How many discs carry each label key (`Label::key`), after refusing labels the fit cannot
/// use, with the reason and the fix in words.
pub fn check_labels(labels: &[Label], min: usize) -> Result<[usize; Label::KEYS]> {
    let mut count = [0usize; Label::KEYS];
    for l in labels {
        count[l.key()] += 1;
    }
    let used = count.iter().filter(|&&n| n > 0).count();
    if labels.is_empty() {
        return Err(Error::Invalid(
            "no labelled discs: label discs (normal, wavy, notched, schmorl, or normal/lesion) \
             before adapting"
                .into(),
        ));
    }
    if used < 2 {
        return Err(Error::Invalid(format!(
            "all {} labelled discs are `{}`: adaptation needs discs of at least two labels (e.g. \
             normal and lesion), so it was not adapted",
            labels.len(),
            labels[0].id()
        )));
    }
    if let Some(k) = (0..Label::KEYS).find(|&k| count[k] > 0 && count[k] < min) {
        let n = count[k];
        let id = labels.iter().find(|l| l.key() == k).map_or("", |l| l.id());
        return Err(Error::Invalid(format!(
            "label `{id}` has {n} disc{}; adaptation needs at least {min} of every \
             label used (some are held out to check it), so it was not adapted: label more \
             `{id}` discs, or none",
            if n == 1 { "" } else { "s" }
        )));
    }
    Ok(count)
}

/// Whether class `k` is in the set a label admits.
fn admits(label: Label, k: usize) -> bool {
    Class::from_index(k).is_some_and(|c| label.admits(c))
}

/// Features standardised per column, z = (x - mean) / scale, with the two vectors to fold the
/// scaling back into a layer's weights. A feature that does not vary keeps scale 1.
pub(super) struct Standardised {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub rows: Vec<Vec<f64>>,
}

/// [`Standardised`] rows of `d` features each (the caller has checked their width).
pub(super) fn standardise(features: &[Vec<f32>], d: usize) -> Standardised {
    let n = features.len().max(1) as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| features.iter().map(|f| f[j] as f64).sum::<f64>() / n)
        .collect();
    let scale: Vec<f64> = (0..d)
        .map(|j| {
            let v = features
                .iter()
                .map(|f| (f[j] as f64 - mean[j]).powi(2))
                .sum::<f64>()
                / n;
            if v > 1e-12 {
                v.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let rows = features
        .iter()
        .map(|f| (0..d).map(|j| (f[j] as f64 - mean[j]) / scale[j]).collect())
        .collect();
    Standardised { mean, scale, rows }
}

/// Fit the layer on `features` (one row per disc) and `labels`, starting from and pulled
/// towards `base`. Class-balanced cross-entropy over the classes each label admits, plus
/// `lambda / 2 * |W - W0|^2` in standardised feature space (biases unpenalised).
pub fn fit(
    features: &[Vec<f32>],
    labels: &[Label],
    base: &Layer,
    options: FitOptions,
) -> Result<Layer> {
    // The fit sees what the held-out split left it: at least MIN_FIT_PER_LABEL of each label.
    let count = check_labels(labels, MIN_FIT_PER_LABEL)?;
    if !(options.lambda.is_finite() && options.lambda >= 0.0) {
        return Err(Error::Invalid(format!(
            "lambda {} is not a penalty: give a number >= 0 (default {})",
            options.lambda,
            FitOptions::default().lambda
        )));
    }
    let (n, classes) = (features.len(), base.weights.len());
    let d = base.weights.first().map_or(0, |w| w.len());
    if n != labels.len() || classes != 4 {
        return Err(Error::Invalid(format!(
            "{n} feature rows for {} labels and a layer of {classes} classes (four expected)",
            labels.len()
        )));
    }
    if features.iter().any(|f| f.len() != d) || base.weights.iter().any(|w| w.len() != d) {
        return Err(Error::Invalid(format!(
            "feature rows must have the last layer's width, {d}"
        )));
    }
    let Standardised {
        mean,
        scale,
        rows: z,
    } = standardise(features, d);
    // Each label present weighs the same in total; the weights sum to one.
    let used = count.iter().filter(|&&c| c > 0).count() as f64;
    let weight: Vec<f64> = labels
        .iter()
        .map(|l| 1.0 / (used * count[l.key()] as f64))
        .collect();
    // The base layer in z-space: W_z = W ∘ s, b_z = b + W · m.
    let anchor = Layer {
        weights: base
            .weights
            .iter()
            .map(|w| w.iter().zip(&scale).map(|(w, s)| w * s).collect())
            .collect(),
        bias: base
            .weights
            .iter()
            .zip(&base.bias)
            .map(|(w, b)| b + w.iter().zip(&mean).map(|(w, m)| w * m).sum::<f64>())
            .collect(),
    };
    let lipschitz = 0.5 * top_eigenvalue(&z, &weight) + options.lambda;
    let lr = 1.0 / lipschitz;

    let mut x = anchor.clone();
    let mut y = anchor.clone();
    let mut t = 1.0f64;
    for _ in 0..options.steps {
        let (gw, gb) = gradient(&y, &z, labels, &weight, &anchor, options.lambda);
        let mut next = y.clone();
        for k in 0..classes {
            next.bias[k] -= lr * gb[k];
            for (w, g) in next.weights[k].iter_mut().zip(&gw[k]) {
                *w -= lr * g;
            }
        }
        let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let beta = (t - 1.0) / t_next;
        for k in 0..classes {
            y.bias[k] = next.bias[k] + beta * (next.bias[k] - x.bias[k]);
            for j in 0..d {
                y.weights[k][j] =
                    next.weights[k][j] + beta * (next.weights[k][j] - x.weights[k][j]);
            }
        }
        x = next;
        t = t_next;
    }
    // Back to raw features: W = W_z / s, b = b_z - W · m.
    let weights: Vec<Vec<f64>> = x
        .weights
        .iter()
        .map(|w| w.iter().zip(&scale).map(|(w, s)| w / s).collect())
        .collect();
    let bias = x
        .bias
        .iter()
        .zip(&weights)
        .map(|(b, w)| b - w.iter().zip(&mean).map(|(w, m)| w * m).sum::<f64>())
        .collect();
    Ok(Layer { weights, bias })
}

/// The loss's gradient at `layer` (z-space).
fn gradient(
    layer: &Layer,
    z: &[Vec<f64>],
    labels: &[Label],
    weight: &[f64],
    anchor: &Layer,
    lambda: f64,
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let (classes, d) = (layer.weights.len(), anchor.weights[0].len());
    let mut gw: Vec<Vec<f64>> = (0..classes)
        .map(|k| {
            (0..d)
                .map(|j| lambda * (layer.weights[k][j] - anchor.weights[k][j]))
                .collect()
        })
        .collect();
    let mut gb = vec![0.0; classes];
    for ((x, &label), &w) in z.iter().zip(labels).zip(weight) {
        let l: Vec<f64> = layer
            .weights
            .iter()
            .zip(&layer.bias)
            .map(|(wk, b)| b + wk.iter().zip(x).map(|(a, b)| a * b).sum::<f64>())
            .collect();
        let lse = |keep: &dyn Fn(usize) -> bool| {
            let m = (0..classes)
                .filter(|&k| keep(k))
                .map(|k| l[k])
                .fold(f64::NEG_INFINITY, f64::max);
            m + (0..classes)
                .filter(|&k| keep(k))
                .map(|k| (l[k] - m).exp())
                .sum::<f64>()
                .ln()
        };
        let all = lse(&|_| true);
        let set = lse(&|k| admits(label, k));
        // d/dl_k of -log P(set) = p_k - [k in set] p_k / P(set).
        for k in 0..classes {
            let mut g = (l[k] - all).exp();
            if admits(label, k) {
                g -= (l[k] - set).exp();
            }
            let g = w * g;
            gb[k] += g;
            for (gw, &x) in gw[k].iter_mut().zip(x) {
                *gw += g * x;
            }
        }
    }
    (gw, gb)
}

/// The largest eigenvalue of `sum_i w_i [z_i; 1][z_i; 1]^T` by power iteration (a bound on the
/// curvature that fixes the step size).
fn top_eigenvalue(z: &[Vec<f64>], weight: &[f64]) -> f64 {
    let d = z.first().map_or(0, |r| r.len()) + 1;
    let mut v = vec![1.0 / (d as f64).sqrt(); d];
    let mut value = 0.0;
    for _ in 0..50 {
        let mut next = vec![0.0; d];
        for (x, &w) in z.iter().zip(weight) {
            let dot = x.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>() + v[d - 1];
            for (n, a) in next.iter_mut().zip(x.iter().chain([&1.0])) {
                *n += w * dot * a;
            }
        }
        value = next.iter().map(|a| a * a).sum::<f64>().sqrt();
        if value == 0.0 {
            return 0.0;
        }
        v = next.iter().map(|a| a / value).collect();
    }
    // Power iteration approaches from below: leave a margin.
    1.1 * value
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: Label = Label::Class(Class::Normal);
    const W: Label = Label::Class(Class::Wavy);

    /// Two blobs in three features: normal around -shift/2 on feature 0, the other label around
    /// +shift/2.
    fn blobs(n: usize, shift: f32, other: Label) -> (Vec<Vec<f32>>, Vec<Label>) {
        let mut s = 12345u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = i % 2;
            x.push(vec![rnd() + (c as f32 - 0.5) * shift, rnd(), rnd()]);
            y.push(if c == 0 { N } else { other });
        }
        (x, y)
    }

    fn zero(d: usize) -> Layer {
        Layer {
            weights: vec![vec![0.0; d]; 4],
            bias: vec![0.0; 4],
        }
    }

    fn p_normal(layer: &Layer, x: &[f32]) -> f64 {
        let l = layer.logits(x);
        let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
        e[0] / e.iter().sum::<f64>()
    }

    #[test]
    fn refuses_one_label_too_few_and_nothing() {
        let e = check_labels(&[W; 20], MIN_PER_LABEL)
            .unwrap_err()
            .to_string();
        assert!(e.contains("all 20 labelled discs are `wavy`"), "{e}");
        let mut l = vec![N; 20];
        l.extend([Label::Lesion; 3]);
        let e = check_labels(&l, MIN_PER_LABEL).unwrap_err().to_string();
        assert!(
            e.contains("`lesion` has 3 discs") && e.contains("at least 8"),
            "{e}"
        );
        assert!(check_labels(&[], MIN_PER_LABEL).is_err());
        let mut l = vec![N; 8];
        l.extend([Label::Lesion; 9]);
        assert_eq!(check_labels(&l, MIN_PER_LABEL).unwrap(), [8, 0, 0, 0, 9]);
    }

    #[test]
    fn separable_blobs_are_learnt_and_the_fit_is_deterministic() {
        let (x, y) = blobs(80, 2.0, W);
        let layer = fit(&x, &y, &zero(3), FitOptions::default()).unwrap();
        let right = x
            .iter()
            .zip(&y)
            .filter(|(x, &y)| (p_normal(&layer, x) > 0.5) == (y == N))
            .count();
        assert!(right >= 76, "{right} of 80 right");
        assert_eq!(layer, fit(&x, &y, &zero(3), FitOptions::default()).unwrap());
    }

    #[test]
    fn lesion_labels_move_normal_against_the_three_lesion_classes() {
        let (x, y) = blobs(80, 2.0, Label::Lesion);
        let weak = FitOptions {
            lambda: 1e-3,
            ..Default::default()
        };
        let layer = fit(&x, &y, &zero(3), weak).unwrap();
        let (lo, hi) = (vec![-1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0]);
        assert!(p_normal(&layer, &lo) > 0.8 && p_normal(&layer, &hi) < 0.2);
        // The three lesion classes share what they learnt: no label told them apart.
        let l = layer.logits(&hi);
        assert!(
            (l[1] - l[2]).abs() < 1e-9 && (l[2] - l[3]).abs() < 1e-9,
            "{l:?}"
        );
    }

    #[test]
    fn strong_regularisation_keeps_the_base_layer_and_zero_steps_return_it() {
        let (x, y) = blobs(40, 2.0, W);
        let base = Layer {
            weights: vec![
                vec![0.5, 0.1, 0.0],
                vec![-0.5, 0.0, 0.2],
                vec![0.0; 3],
                vec![0.0; 3],
            ],
            bias: vec![0.1, 0.0, -0.3, 0.0],
        };
        let strong = FitOptions {
            lambda: 1e6,
            steps: 50,
        };
        let layer = fit(&x, &y, &base, strong).unwrap();
        for (a, b) in layer
            .weights
            .iter()
            .flatten()
            .zip(base.weights.iter().flatten())
        {
            assert!((a - b).abs() < 1e-3, "{a} {b}");
        }
        let bad = FitOptions {
            lambda: -1.0,
            steps: 1,
        };
        assert!(fit(&x, &y, &base, bad)
            .unwrap_err()
            .to_string()
            .contains("not a penalty"));
        let none = FitOptions {
            steps: 0,
            ..Default::default()
        };
        let same = fit(&x, &y, &base, none).unwrap();
        for (p, q) in x.iter().map(|x| (same.logits(x), base.logits(x))) {
            for (a, b) in p.iter().zip(q) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn the_fit_takes_what_the_split_leaves_it() {
        // 8 discs of a label pass adaptation's check; after the held-out split the fit may keep
        // only MIN_FIT_PER_LABEL of them, and must accept that.
        let base = Layer {
            weights: vec![vec![0.0; 3]; 4],
            bias: vec![0.0; 4],
        };
        let n = MIN_FIT_PER_LABEL;
        let features: Vec<Vec<f32>> = (0..2 * n)
            .map(|i| vec![(i / n) as f32, (i % 3) as f32, 1.0])
            .collect();
        let labels: Vec<Label> = (0..2 * n)
            .map(|i| {
                if i < n {
                    Label::Class(Class::Normal)
                } else {
                    Label::Lesion
                }
            })
            .collect();
        let layer = fit(&features, &labels, &base, FitOptions::default()).unwrap();
        let p_normal = |x: &[f32]| {
            let l = layer.logits(x);
            let z: f64 = l.iter().map(|v| v.exp()).sum();
            l[0].exp() / z
        };
        assert!(p_normal(&features[0]) > p_normal(&features[2 * n - 1]));
        assert!(check_labels(&labels[..2 * n - 1], MIN_FIT_PER_LABEL).is_err());
    }
}
