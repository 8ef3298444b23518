//! Platt scaling, one-vs-rest, as SPEC.md fixes it: per class k a sigmoid of that class's logit,
//! fitted by the Platt / Lin-Lin-Weng Newton method with smoothed targets (what
//! `sklearn.calibration` calls "sigmoid"), then normalised to sum to one.

use crate::class::{Class, Label};
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
        Self::fit_share(scores, positive, 1.0)
    }

    /// [`Self::fit`] with every smoothed target multiplied by `share`: the sigmoid then
    /// estimates `share` × P(positive). Used for a lesion class that only binary labels speak
    /// of, which gets its equal share of P(lesion).
    fn fit_share(scores: &[f64], positive: &[bool], share: f64) -> Result<Sigmoid> {
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
        let t = smoothed_targets(positive, share);
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
        let terms = |a: f64, b: f64, i: usize| {
            let z = scores[i] * a + b;
            let (p, q) = if z >= 0.0 {
                let e = (-z).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = z.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            (p * q, t[i] - p)
        };
        let prior1 = positive.iter().filter(|&&p| p).count() as f64;
        let prior0 = positive.len() as f64 - prior1;
        let start = Sigmoid {
            a: 0.0,
            b: ((prior0 + 1.0) / (prior1 + 1.0)).ln(),
        };
        Ok(minimise(scores, start, objective, terms, 1e-5))
    }

    /// Refit this sigmoid so that its share of the normalisation, `σ(s) / (σ(s) + rest)`, is
    /// calibrated for `positive` (the smoothed targets of [`Self::fit`]), starting from `self`.
    /// `rest` is the sum of the other classes' sigmoids for each disc.
    fn refit_normalised(&self, scores: &[f64], rest: &[f64], positive: &[bool]) -> Sigmoid {
        let t = smoothed_targets(positive, 1.0);
        let share = |a: f64, b: f64, i: usize| {
            let s = Sigmoid { a, b }.apply(scores[i]);
            (s, (s / (s + rest[i])).clamp(1e-15, 1.0 - 1e-15))
        };
        let objective = |a: f64, b: f64| -> f64 {
            (0..scores.len())
                .map(|i| {
                    let (_, p) = share(a, b, i);
                    -(t[i] * p.ln() + (1.0 - t[i]) * (1.0 - p).ln())
                })
                .sum()
        };
        if !objective(self.a, self.b).is_finite() {
            return *self;
        }
        // With z = a s + b: dp/dz = -p (1 - p) (1 - σ), so the objective's gradient in z is
        // (t - p)(1 - σ) and its Fisher information p (1 - p) (1 - σ)² (Fisher scoring).
        let terms = |a: f64, b: f64, i: usize| {
            let (s, p) = share(a, b, i);
            (
                p * (1.0 - p) * (1.0 - s) * (1.0 - s),
                (t[i] - p) * (1.0 - s),
            )
        };
        minimise(scores, *self, objective, terms, 1e-6)
    }
}

/// Platt's smoothed targets (Lin, Lin & Weng): (n₁ + 1) / (n₁ + 2) for a positive, 1 / (n₀ + 2)
/// for a negative, each times `share`.
fn smoothed_targets(positive: &[bool], share: f64) -> Vec<f64> {
    let prior1 = positive.iter().filter(|&&p| p).count() as f64;
    let prior0 = positive.len() as f64 - prior1;
    let (hi, lo) = ((prior1 + 1.0) / (prior1 + 2.0), 1.0 / (prior0 + 2.0));
    positive
        .iter()
        .map(|&p| share * if p { hi } else { lo })
        .collect()
}

/// Minimise `objective(a, b)` of a sigmoid `1 / (1 + exp(a s + b))` from `start` by Newton (or
/// Fisher scoring) steps with step halving, Lin, Lin & Weng's algorithm 1. `terms(a, b, i)`
/// gives score `i`'s weight in the second derivative in `z = a s + b` and its term of the
/// negative gradient in `z`; the loop stops when both gradient components are under `tolerance`.
fn minimise(
    scores: &[f64],
    start: Sigmoid,
    objective: impl Fn(f64, f64) -> f64,
    terms: impl Fn(f64, f64, usize) -> (f64, f64),
    tolerance: f64,
) -> Sigmoid {
    const SIGMA: f64 = 1e-12;
    const MIN_STEP: f64 = 1e-10;
    let Sigmoid { mut a, mut b } = start;
    let mut fval = objective(a, b);
    for _ in 0..100 {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
        for (i, &f) in scores.iter().enumerate() {
            let (d2, d1) = terms(a, b, i);
            h11 += f * f * d2;
            h22 += d2;
            h21 += f * d2;
            g1 += f * d1;
            g2 += d1;
        }
        if g1.abs() < tolerance && g2.abs() < tolerance {
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
    Sigmoid { a, b }
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

    /// Fit one-vs-rest Platt scaling on held-out logits and their labels. Class k's sigmoid is
    /// fitted on the discs whose membership in k is known: a `lesion` disc is known not to be
    /// normal, so real binary-labelled discs calibrate P(normal), while its type is unknown and
    /// it sits out the lesion classes' fits. The lesion classes with no known member (a model
    /// that saw only binary labels) share P(lesion) equally: each is fitted with every `lesion`
    /// disc as a member and its targets divided by their number, so the normalised P(normal)
    /// stays calibrated; the split among those classes then means nothing.
    pub fn fit_platt(logits: &[[f32; 4]], truth: &[Label]) -> Result<Calibration> {
        if logits.len() != truth.len() {
            return Err(Error::Invalid(format!(
                "calibration needs one label per logit row: {} rows, {} labels",
                logits.len(),
                truth.len()
            )));
        }
        let known = |l: &Label, c: Class| match l {
            Label::Class(t) => Some(*t == c),
            Label::Lesion => (c == Class::Normal).then_some(false),
        };
        let has_member = |c: Class| truth.iter().any(|l| known(l, c) == Some(true));
        let memberless = Class::ALL.iter().filter(|&&c| !has_member(c)).count();
        let mut sigmoids = [Sigmoid { a: 0.0, b: 0.0 }; 4];
        for (k, s) in sigmoids.iter_mut().enumerate() {
            let c = Class::ALL[k];
            let known = |l: &Label| known(l, c);
            let any_member = has_member(c);
            let (scores, pos): (Vec<f64>, Vec<bool>) = logits
                .iter()
                .zip(truth)
                .filter_map(|(l, t)| {
                    let member = if any_member { known(t)? } else { t.admits(c) };
                    Some((l[k] as f64, member))
                })
                .unzip();
            let share = if any_member {
                1.0
            } else {
                1.0 / memberless as f64
            };
            *s = Sigmoid::fit_share(&scores, &pos, share)?;
        }
        // What every reader shows is P(normal) after the normalisation, and on real discs the
        // lesion classes' sigmoids (fitted on the phantoms, the only discs that name a lesion's
        // type) leave little room beside it: one-vs-rest, the bundled model's out-of-fold
        // P(lesion) averaged 0.34 on SPIDER discs of which 48 % are lesions. So the normal
        // sigmoid is refitted on every disc against the normalised P(normal)
        // (docs/real-mri-experiments.md, "The calibration of P(lesion)"); the lesion classes
        // keep theirs.
        let scores: Vec<f64> = logits.iter().map(|l| l[0] as f64).collect();
        let rest: Vec<f64> = logits
            .iter()
            .map(|l| (1..4).map(|k| sigmoids[k].apply(l[k] as f64)).sum())
            .collect();
        let normal: Vec<bool> = truth.iter().map(|t| t.admits(Class::Normal)).collect();
        sigmoids[0] = sigmoids[0].refit_normalised(&scores, &rest, &normal);
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
    fn lesion_discs_calibrate_normal_only() {
        // Four-class discs: the true class's logit is 2, the others 0. Binary discs: a normal
        // disc has logit 2 on normal; a lesion disc has logit 2 on every lesion class (what
        // training on P(normal) alone leads to), yet sits out their fits.
        let onehot = |k: usize| {
            let mut l = [0.0f32; 4];
            l[k] = 2.0;
            l
        };
        let mut logits: Vec<[f32; 4]> = (0..40).map(|i| onehot(i % 4)).collect();
        let mut truth: Vec<Label> = (0..40).map(|i| Label::Class(Class::ALL[i % 4])).collect();
        let four = Calibration::fit_platt(&logits, &truth).unwrap();
        logits.extend((0..40).map(|i| {
            if i % 2 == 0 {
                onehot(0)
            } else {
                [0.0, 2.0, 2.0, 2.0]
            }
        }));
        truth.extend((0..40).map(|i| {
            if i % 2 == 0 {
                Label::Class(Class::Normal)
            } else {
                Label::Lesion
            }
        }));
        let mixed = Calibration::fit_platt(&logits, &truth).unwrap();
        let (Calibration::Platt { sigmoids: f }, Calibration::Platt { sigmoids: m }) =
            (&four, &mixed)
        else {
            panic!("platt")
        };
        // Wavy's fit sees the 20 extra normal discs (known non-members) but no lesion disc.
        assert_ne!(f[1], m[1]);
        // Only binary labels: every class still gets a sigmoid, lesion classes from the lesions.
        let binary = Calibration::fit_platt(&logits[40..], &truth[40..]).unwrap();
        let p = binary.probabilities(&[0.0, 2.0, 2.0, 2.0]);
        let q = binary.probabilities(&onehot(0));
        assert!(
            p[0] < q[0],
            "a lesion-like disc is less likely normal: {p:?} {q:?}"
        );
        // Calibrated: on these 40 discs, half lesion, the mean P(normal) is near one half (the
        // three lesion classes share P(lesion) instead of each claiming all of it).
        let mean: f32 = logits[40..]
            .iter()
            .map(|l| binary.probabilities(l)[0])
            .sum::<f32>()
            / 40.0;
        assert!((mean - 0.5).abs() < 0.1, "mean P(normal) {mean}");
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(Sigmoid::fit(&[1.0, 2.0], &[true]).is_err());
        assert!(Calibration::fit_platt(&[[0.0; 4]], &[]).is_err());
    }

    /// Phantoms name a lesion's type and light up its logit; real lesions (binary labels) leave
    /// the type logits low, as a network that learnt the types from phantoms does. One-vs-rest,
    /// the normalisation then hands real lesions most of the probability as `normal`; refitted
    /// against the normalised P(normal), the real discs' mean P(normal) is their normal rate.
    #[test]
    fn the_normalised_p_normal_is_calibrated_on_discs_whose_types_the_network_does_not_see() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut noise = || rng.random_range(-1.0f32..1.0) + rng.random_range(-1.0f32..1.0);
        let (mut logits, mut truth) = (Vec::new(), Vec::new());
        for i in 0..800 {
            let c = Class::ALL[i % 4];
            logits.push(std::array::from_fn(|k| {
                (if k == c.index() { 3.0 } else { -2.0 }) + noise()
            }));
            truth.push(Label::Class(c));
        }
        let real = logits.len();
        for i in 0..800 {
            let normal = i % 2 == 0;
            let l0 = (if normal { 1.0 } else { -1.0 }) + 1.5 * noise();
            logits.push([l0, -2.0 + noise(), -2.0 + noise(), -2.0 + noise()]);
            truth.push(if normal {
                Label::Class(Class::Normal)
            } else {
                Label::Lesion
            });
        }
        let Calibration::Platt { sigmoids } = Calibration::fit_platt(&logits, &truth).unwrap()
        else {
            panic!("Platt expected")
        };
        let normal: Vec<bool> = truth.iter().map(|t| t.admits(Class::Normal)).collect();
        let scores: Vec<f64> = logits.iter().map(|l| l[0] as f64).collect();
        let one_vs_rest = Sigmoid::fit(&scores, &normal).unwrap();
        let mean_p_normal = |s0: Sigmoid| {
            let cal = Calibration::Platt {
                sigmoids: [s0, sigmoids[1], sigmoids[2], sigmoids[3]],
            };
            logits[real..]
                .iter()
                .map(|l| cal.probabilities(l)[0] as f64)
                .sum::<f64>()
                / (logits.len() - real) as f64
        };
        let (before, after) = (mean_p_normal(one_vs_rest), mean_p_normal(sigmoids[0]));
        assert!(
            before > 0.6,
            "one-vs-rest: mean P(normal) {before} on real discs, half normal"
        );
        assert!(
            (after - 0.5).abs() < 0.03,
            "refitted: mean P(normal) {after}"
        );
        // The phantoms stay readable: their true class still wins almost always.
        let cal = Calibration::Platt { sigmoids };
        let right = logits[..real]
            .iter()
            .zip(&truth)
            .filter(
                |(l, t)| matches!(t, Label::Class(c) if Class::argmax(&cal.probabilities(l)) == *c),
            )
            .count();
        assert!(
            right as f64 > 0.95 * real as f64,
            "{right} of {real} phantoms"
        );
    }
}
