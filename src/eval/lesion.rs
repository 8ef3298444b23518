//! SPEC.md's lesion-vs-normal figures, the primary measure wherever the truth is binary (real
//! gradings such as SPIDER's, or four-class labels collapsed): AUC of P(lesion) = 1 − P(normal),
//! and sensitivity, specificity and accuracy at P(lesion) ≥ 0.5.
//!
//! Intervals come from a bootstrap over subjects: one patient's five discs share a scan, a
//! reader and often a degeneration pattern, so resampling discs would pretend to more evidence
//! than there is.

use super::curves::{auc, div};
use super::metrics::Estimate;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// The operating point SPEC.md fixes for the binary figures.
pub const THRESHOLD: f64 = 0.5;

/// Point values on one set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LesionPoint {
    pub auc: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub accuracy: f64,
}

/// `lesion[i]`: the truth; `p_lesion[i]`: the model's P(lesion). AUC is NaN with one side empty.
pub fn compute(lesion: &[bool], p_lesion: &[f64]) -> LesionPoint {
    let (mut tp, mut fn_, mut tn, mut fp) = (0.0, 0.0, 0.0, 0.0);
    for (&t, &p) in lesion.iter().zip(p_lesion) {
        match (t, p >= THRESHOLD) {
            (true, true) => tp += 1.0,
            (true, false) => fn_ += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fp += 1.0,
        }
    }
    LesionPoint {
        auc: auc(p_lesion, lesion),
        sensitivity: div(tp, tp + fn_),
        specificity: div(tn, tn + fp),
        accuracy: div(tp + tn, tp + tn + fp + fn_),
    }
}

/// The lesion-vs-normal block of `evaluate --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LesionReport {
    pub n: usize,
    pub lesions: usize,
    pub subjects: usize,
    pub auc: Estimate,
    pub sensitivity: Estimate,
    pub specificity: Estimate,
    pub accuracy: Estimate,
    pub threshold: f64,
    pub bootstrap: serde_json::Value,
}

/// Point values with 95 % intervals from `resamples` subject-level bootstrap draws.
pub fn evaluate(
    lesion: &[bool],
    p_lesion: &[f64],
    subjects: &[String],
    resamples: usize,
    seed: u64,
) -> LesionReport {
    let point = compute(lesion, p_lesion);
    let groups = subject_groups(subjects);
    let mut draws: [Vec<f64>; 4] = Default::default();
    for idx in subject_resamples(&groups, resamples, seed) {
        let t: Vec<bool> = idx.iter().map(|&i| lesion[i]).collect();
        let p: Vec<f64> = idx.iter().map(|&i| p_lesion[i]).collect();
        let s = compute(&t, &p);
        for (d, v) in draws
            .iter_mut()
            .zip([s.auc, s.sensitivity, s.specificity, s.accuracy])
        {
            if v.is_finite() {
                d.push(v);
            }
        }
    }
    let [a, se, sp, ac] = draws;
    LesionReport {
        n: lesion.len(),
        lesions: lesion.iter().filter(|&&l| l).count(),
        subjects: groups.len(),
        auc: Estimate::from_samples(point.auc, a),
        sensitivity: Estimate::from_samples(point.sensitivity, se),
        specificity: Estimate::from_samples(point.specificity, sp),
        accuracy: Estimate::from_samples(point.accuracy, ac),
        threshold: THRESHOLD,
        bootstrap: serde_json::json!({"resamples": resamples, "seed": seed, "unit": "subject"}),
    }
}

/// The items of each subject, subjects in name order (so a bootstrap does not depend on the
/// order of the rows).
pub fn subject_groups<S: AsRef<str>>(subjects: &[S]) -> Vec<Vec<usize>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, s) in subjects.iter().enumerate() {
        groups.entry(s.as_ref()).or_default().push(i);
    }
    groups.into_values().collect()
}

/// Bootstrap resamples over subjects: each draws as many subjects as there are, with
/// replacement, and yields all their items. None with fewer than two subjects (nothing to
/// resample).
pub fn subject_resamples(
    groups: &[Vec<usize>],
    resamples: usize,
    seed: u64,
) -> impl Iterator<Item = Vec<usize>> + '_ {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = if groups.len() > 1 { resamples } else { 0 };
    (0..n).map(move |_| {
        (0..groups.len())
            .flat_map(|_| groups[rng.random_range(0..groups.len())].iter().copied())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_hand_at_the_half_threshold() {
        // Lesions scored .9 .6 .4, normals .1 .55 .2: TP 2, FN 1, TN 2, FP 1.
        let t = [true, true, true, false, false, false];
        let p = [0.9, 0.6, 0.4, 0.1, 0.55, 0.2];
        let s = compute(&t, &p);
        assert_eq!(
            (s.sensitivity, s.specificity, s.accuracy),
            (2.0 / 3.0, 2.0 / 3.0, 4.0 / 6.0)
        );
        // Pairs (lesion above normal): .9 and .6 beat all three, .4 beats two -> 8 of 9.
        assert!((s.auc - 8.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_draws_whole_subjects() {
        let subjects: Vec<String> = ["c", "a", "b", "a", "c", "c"].map(String::from).to_vec();
        let groups = subject_groups(&subjects);
        assert_eq!(groups, vec![vec![1, 3], vec![2], vec![0, 4, 5]]);
        for draw in subject_resamples(&groups, 50, 3) {
            // Each subject's items come together: a draw is a concatenation of whole groups.
            let mut rest = &draw[..];
            while !rest.is_empty() {
                let g = groups
                    .iter()
                    .find(|g| rest.starts_with(g))
                    .expect("whole group");
                rest = &rest[g.len()..];
            }
        }
        assert_eq!(subject_resamples(&groups[..1], 50, 3).count(), 0);
    }

    #[test]
    fn intervals_bracket_the_point_and_are_seeded() {
        let subjects: Vec<String> = (0..40).map(|i| format!("p{}", i / 2)).collect();
        let lesion: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        let p: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 0.7 } else { 0.3 } + if i % 7 == 0 { -0.45 } else { 0.0 })
            .collect();
        let a = evaluate(&lesion, &p, &subjects, 300, 5);
        assert_eq!(a, evaluate(&lesion, &p, &subjects, 300, 5));
        assert_eq!((a.n, a.lesions, a.subjects), (40, 20, 20));
        assert!(a.auc.lo <= a.auc.point && a.auc.point <= a.auc.hi);
        assert!(
            a.auc.hi - a.auc.lo > 0.0 && a.auc.point > 0.8,
            "{:?}",
            a.auc
        );
    }
}
