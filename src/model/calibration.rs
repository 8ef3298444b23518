//! Platt scaling, one-vs-rest, as SPEC.md fixes it: per class k a sigmoid of that class's logit,
//! fitted by the Platt / Lin-Lin-Weng Newton method with smoothed targets (what
//! `sklearn.calibration` calls "sigmoid"), then normalised to sum to one.

use crate::class::Class;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One sigmoid `1 / (1 + exp(a * s + b))` of a score `s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sigmoid {
    pub a: f64,
    pub b: f64,
}

impl Sigmoid {
    pub fn apply(&self, s: f64) -> f64 {
        let z = self.a * s + self.b;
        // Written both ways so neither branch overflows.
        if z >= 0.0 {
            let e = (-z).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + z.exp())
        }
    }

    /// Fit on scores and binary outcomes (Lin, Lin & Weng 2007, "A note on Platt's probabilistic
    /// outputs for support vector machines", algorithm 1).
    pub fn fit(scores: &[f64], positive: &[bool]) -> Result<Sigmoid> {
        if scores.len() != positive.len() || scores.is_empty() {
            return Err(Error::Invalid(format!(
                "Platt fit needs as many outcomes as scores, and at least one: got {} scores, {} outcomes",
                scores.len(),
                positive.len()
            )));
        }
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(Error::Invalid("Platt fit: a score is not finite".into()));
        }
        let prior1 = positive.iter().filter(|&&p| p).count() as f64;
        let prior0 = positive.len() as f64 - prior1;
        let hi = (prior1 + 1.0) / (prior1 + 2.0);
        let lo = 1.0 / (prior0 + 2.0);
        let t: Vec<f64> = positive.iter().map(|&p| if p { hi } else { lo }).collect();

        let objective = |a: f64, b: f64| -> f64 {
            scores
                .iter()
                .zip(&t)
                .map(|(&f, &t)| {
                    let z = f * a + b;
                    if z >= 0.0 {
                        t * z + (-z).exp().ln_1p()
                    } else {
                        (t - 1.0) * z + z.exp().ln_1p()
                    }
                })
                .sum()
        };
        let (mut a, mut b) = (0.0, ((prior0 + 1.0) / (prior1 + 1.0)).ln());
        let mut fval = objective(a, b);
        const SIGMA: f64 = 1e-12;
        const MIN_STEP: f64 = 1e-10;
        for _ in 0..100 {
            let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
            for (&f, &t) in scores.iter().zip(&t) {
                let z = f * a + b;
                let (p, q) = if z >= 0.0 {
                    let e = (-z).exp();
                    (e / (1.0 + e), 1.0 / (1.0 + e))
                } else {
                    let e = z.exp();
                    (1.0 / (1.0 + e), e / (1.0 + e))
                };
                let d2 = p * q;
                h11 += f * f * d2;
                h22 += d2;
                h21 += f * d2;
                let d1 = t - p;
                g1 += f * d1;
                g2 += d1;
            }
            if g1.abs() < 1e-5 && g2.abs() < 1e-5 {
                break;
            }
            let det = h11 * h22 - h21 * h21;
            let da = -(h22 * g1 - h21 * g2) / det;
            let db = -(-h21 * g1 + h11 * g2) / det;
            let gd = g1 * da + g2 * db;
            let mut step = 1.0;
            while step >= MIN_STEP {
                let (na, nb) = (a + step * da, b + step * db);
                let nf = objective(na, nb);
                if nf < fval + 1e-4 * step * gd {
                    (a, b, fval) = (na, nb, nf);
                    break;
                }
                step /= 2.0;
            }
            if step < MIN_STEP {
                break;
            }
        }
        Ok(Sigmoid { a, b })
    }
}

/// How logits become probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Calibration {
    /// Uncalibrated: a plain softmax (for a model that has not been calibrated yet).
    Softmax,
    /// One-vs-rest Platt sigmoids in class order, normalised.
    Platt { sigmoids: [Sigmoid; 4] },
}

impl Calibration {
    pub fn probabilities(&self, logits: &[f32; 4]) -> [f32; 4] {
        let raw: [f64; 4] = match self {
            Calibration::Softmax => {
                let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                std::array::from_fn(|k| (logits[k] as f64 - m).exp())
            }
            Calibration::Platt { sigmoids } => {
                std::array::from_fn(|k| sigmoids[k].apply(logits[k] as f64))
            }
        };
        let sum: f64 = raw.iter().sum();
        if sum <= 0.0 || !sum.is_finite() {
            return [0.25; 4];
        }
        std::array::from_fn(|k| (raw[k] / sum) as f32)
    }

    /// Fit one-vs-rest Platt scaling on held-out logits and their true classes.
    pub fn fit_platt(logits: &[[f32; 4]], truth: &[Class]) -> Result<Calibration> {
        if logits.len() != truth.len() {
            return Err(Error::Invalid(format!(
                "calibration needs one label per logit row: {} rows, {} labels",
                logits.len(),
                truth.len()
            )));
        }
        let mut sigmoids = [Sigmoid { a: 0.0, b: 0.0 }; 4];
        for (k, s) in sigmoids.iter_mut().enumerate() {
            let scores: Vec<f64> = logits.iter().map(|l| l[k] as f64).collect();
            let pos: Vec<bool> = truth.iter().map(|c| c.index() == k).collect();
            *s = Sigmoid::fit(&scores, &pos)?;
        }
        Ok(Calibration::Platt { sigmoids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    #[test]
    fn recovers_a_known_sigmoid() {
        // Outcomes drawn from P(y=1|s) = 1/(1+exp(-2s + 0.5)), i.e. a = -2, b = 0.5.
        let mut rng = SmallRng::seed_from_u64(7);
        let truth = Sigmoid { a: -2.0, b: 0.5 };
        let scores: Vec<f64> = (0..20000).map(|_| rng.random_range(-3.0..3.0)).collect();
        let pos: Vec<bool> = scores
            .iter()
            .map(|&s| rng.random::<f64>() < truth.apply(s))
            .collect();
        let fit = Sigmoid::fit(&scores, &pos).unwrap();
        assert!((fit.a - truth.a).abs() < 0.1, "{fit:?}");
        assert!((fit.b - truth.b).abs() < 0.1, "{fit:?}");
    }

    #[test]
    fn separable_data_stays_finite_thanks_to_smoothed_targets() {
        let scores = [-2.0, -1.0, 1.0, 2.0];
        let fit = Sigmoid::fit(&scores, &[false, false, true, true]).unwrap();
        assert!(fit.a.is_finite() && fit.b.is_finite());
        // Targets are smoothed to 3/4 and 1/4, so the fit cannot be more confident than that on
        // the training points by much.
        assert!(
            fit.apply(2.0) < 0.95 && fit.apply(2.0) > 0.6,
            "{}",
            fit.apply(2.0)
        );
        assert!(fit.apply(-2.0) < 0.4);
    }

    #[test]
    fn platt_probabilities_sum_to_one_and_softmax_matches_definition() {
        let cal = Calibration::Platt {
            sigmoids: [
                Sigmoid { a: -1.0, b: 0.0 },
                Sigmoid { a: -2.0, b: 1.0 },
                Sigmoid { a: -0.5, b: 0.0 },
                Sigmoid { a: -1.0, b: 2.0 },
            ],
        };
        let p = cal.probabilities(&[1.0, 0.5, -1.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let raw = [
            1.0 / (1.0 + (-1.0f64).exp()),
            1.0 / (1.0 + (0.0f64).exp()),
            1.0 / (1.0 + (0.5f64).exp()),
            1.0 / (1.0 + (-1.0f64).exp()),
        ];
        let s: f64 = raw.iter().sum();
        for k in 0..4 {
            assert!((p[k] as f64 - raw[k] / s).abs() < 1e-6);
        }
        let q = Calibration::Softmax.probabilities(&[0.0, 0.0, (2.0f32).ln(), 0.0]);
        assert!((q[2] - 0.4).abs() < 1e-6 && (q[0] - 0.2).abs() < 1e-6);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(Sigmoid::fit(&[1.0, 2.0], &[true]).is_err());
        assert!(Calibration::fit_platt(&[[0.0; 4]], &[]).is_err());
    }
}
