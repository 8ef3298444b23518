//! Adapting the last layer to one's own discs: a class-balanced, L2-regularised multinomial
//! logistic regression on the backbone's pooled features, pulled towards the base model's layer
//! (so few discs move it little), with a deterministic held-out split and refusals for too few
//! or one-class labels. Plain `f64` full-batch gradient descent with a fixed step count: the
//! same numbers natively and in the page.
//!
//! Only the fit lives here so far; the model file's features output, the file writer for the
//! adapted layer, `endplate adapt` and the page's use of it are issue 15's open part.

use crate::error::{Error, Result};

/// The fewest labelled discs per class the fit accepts (of which a quarter is held out).
pub const MIN_PER_CLASS: usize = 8;

/// A refitted last layer: `weights[k]` for class `k`, then its bias.
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

    pub fn predict(&self, x: &[f32]) -> usize {
        let l = self.logits(x);
        (0..l.len())
            .max_by(|&a, &b| l[a].total_cmp(&l[b]))
            .unwrap_or(0)
    }
}

/// Which discs are held out: every fourth of each class, in input order (at least one each).
pub fn held_out(labels: &[usize], classes: usize) -> Vec<bool> {
    let mut seen = vec![0usize; classes];
    labels
        .iter()
        .map(|&c| {
            let k = seen[c];
            seen[c] += 1;
            k % 4 == 3
        })
        .collect()
}

/// Refuse labels the fit cannot use, with the reason in words.
pub fn check_labels(labels: &[usize], classes: usize) -> Result<Vec<usize>> {
    if classes < 2 {
        return Err(Error::Invalid(
            "adaptation needs at least two classes".into(),
        ));
    }
    let mut count = vec![0usize; classes];
    for &c in labels {
        if c >= classes {
            return Err(Error::Invalid(format!(
                "label {c} outside the {classes} classes"
            )));
        }
        count[c] += 1;
    }
    let used = count.iter().filter(|&&n| n > 0).count();
    if used < 2 {
        return Err(Error::Invalid(format!(
            "all {} labelled discs have one class: label discs of at least two classes before adapting",
            labels.len()
        )));
    }
    if let Some((c, &n)) = count
        .iter()
        .enumerate()
        .find(|&(_, &n)| n > 0 && n < MIN_PER_CLASS)
    {
        return Err(Error::Invalid(format!(
            "class {c} has {n} labelled disc{}; adaptation needs at least {MIN_PER_CLASS} per class \
             (a quarter is held out to check it), so it was not adapted",
            if n == 1 { "" } else { "s" }
        )));
    }
    Ok(count)
}

/// Fit the layer on `features` (one row per disc) with class-balanced cross-entropy plus
/// `lambda / 2 * |W - W0|^2` (W0 the base layer when given, else zero; biases unpenalised).
pub fn fit(
    features: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
    base: Option<&Layer>,
    lambda: f64,
    steps: usize,
) -> Result<Layer> {
    let count = check_labels(labels, classes)?;
    if features.len() != labels.len() || features.is_empty() {
        return Err(Error::Invalid(format!(
            "{} feature rows for {} labels",
            features.len(),
            labels.len()
        )));
    }
    let d = features[0].len();
    if features.iter().any(|f| f.len() != d) {
        return Err(Error::Invalid("feature rows of different lengths".into()));
    }
    let used = count.iter().filter(|&&n| n > 0).count() as f64;
    // Each present class weighs the same in total.
    let weight: Vec<f64> = count
        .iter()
        .map(|&n| if n == 0 { 0.0 } else { 1.0 / (used * n as f64) })
        .collect();
    let zero = Layer {
        weights: vec![vec![0.0; d]; classes],
        bias: vec![0.0; classes],
    };
    let anchor = base.unwrap_or(&zero).clone();
    if anchor.weights.len() != classes || anchor.weights.iter().any(|w| w.len() != d) {
        return Err(Error::Invalid(format!(
            "the base layer is not {classes} x {d}"
        )));
    }
    // Step size from the features' scale (a bound on the loss's curvature).
    let scale = features
        .iter()
        .map(|f| f.iter().map(|&v| (v as f64).powi(2)).sum::<f64>())
        .fold(0.0f64, f64::max)
        + 1.0;
    let lr = 1.0 / (0.5 * scale + lambda);
    let mut layer = anchor.clone();
    for _ in 0..steps {
        let mut gw = vec![vec![0.0f64; d]; classes];
        let mut gb = vec![0.0f64; classes];
        for (x, &y) in features.iter().zip(labels) {
            let l = layer.logits(x);
            let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for k in 0..classes {
                let g = weight[y] * (e[k] / z - (k == y) as u8 as f64);
                gb[k] += g;
                for (gw, &x) in gw[k].iter_mut().zip(x) {
                    *gw += g * x as f64;
                }
            }
        }
        for (k, (w, gw)) in layer.weights.iter_mut().zip(&gw).enumerate() {
            layer.bias[k] -= lr * gb[k];
            for ((w, g), w0) in w.iter_mut().zip(gw).zip(&anchor.weights[k]) {
                *w -= lr * (g + lambda * (*w - w0));
            }
        }
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n: usize, shift: f32) -> (Vec<Vec<f32>>, Vec<usize>) {
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
            x.push(vec![rnd() + c as f32 * shift, rnd(), rnd()]);
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn refuses_one_class_and_too_few() {
        let e = check_labels(&[1; 20], 4).unwrap_err().to_string();
        assert!(e.contains("one class"), "{e}");
        let mut l = vec![0; 20];
        l.extend([1, 1, 1]);
        let e = check_labels(&l, 2).unwrap_err().to_string();
        assert!(e.contains("at least 8"), "{e}");
        assert!(check_labels(&[0, 1, 5], 4).is_err());
        assert_eq!(
            check_labels(&[vec![0; 8], vec![2; 9]].concat(), 4).unwrap(),
            vec![8, 0, 9, 0]
        );
    }

    #[test]
    fn separable_blobs_are_learnt_and_held_out_is_a_quarter() {
        let (x, y) = blobs(80, 2.0);
        let hold = held_out(&y, 2);
        assert_eq!(hold.iter().filter(|&&h| h).count(), 20);
        let (tx, ty): (Vec<_>, Vec<_>) = x
            .iter()
            .zip(&y)
            .zip(&hold)
            .filter(|(_, &h)| !h)
            .map(|((x, &y), _)| (x.clone(), y))
            .unzip();
        let layer = fit(&tx, &ty, 2, None, 1e-3, 300).unwrap();
        let right = x
            .iter()
            .zip(&y)
            .zip(&hold)
            .filter(|(_, &h)| h)
            .filter(|((x, &y), _)| layer.predict(x) == y)
            .count();
        assert!(right >= 19, "{right} of 20 held-out right");
        // Deterministic: the same fit twice gives the same numbers.
        assert_eq!(layer, fit(&tx, &ty, 2, None, 1e-3, 300).unwrap());
    }

    #[test]
    fn strong_regularisation_keeps_the_base_layer() {
        let (x, y) = blobs(40, 2.0);
        let base = Layer {
            weights: vec![vec![0.5, 0.0, 0.0], vec![-0.5, 0.0, 0.0]],
            bias: vec![0.0, 0.0],
        };
        let layer = fit(&x, &y, 2, Some(&base), 1e6, 50).unwrap();
        for (a, b) in layer
            .weights
            .iter()
            .flatten()
            .zip(base.weights.iter().flatten())
        {
            assert!((a - b).abs() < 1e-3);
        }
    }
}
