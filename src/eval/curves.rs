//! The curves behind Table 3's scores, one class against the rest: the rank-sum AUC, the ROC
//! curve the report draws, and the reliability diagram with its expected calibration error.
//! Apart from [`super::metrics`] because the report draws them on their own, and each is checked
//! by hand here on a few discs.

use crate::class::Class;
use serde::Serialize;

/// Area under the ROC curve of `scores` for the positives, by the rank-sum (Mann-Whitney)
/// statistic with ties counted half. NaN when one side is empty.
pub fn auc(scores: &[f64], positive: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    let sum: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, &p)| p)
        .map(|(r, _)| r)
        .sum();
    (sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// The ROC curve of `scores` for the positives: (false-positive rate, true-positive rate) from
/// (0, 0) to (1, 1), one step per distinct score, ties taken together. Its trapezoid area is
/// [`auc`].
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n_pos = positive.iter().filter(|&&p| p).count().max(1) as f64;
    let n_neg = (positive.len() as f64 - n_pos).max(1.0);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if positive[idx[i]] {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        out.push((fp / n_neg, tp / n_pos));
    }
    out
}

/// One bin of a reliability diagram over the top-class probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    pub confidence: f64,
    pub accuracy: f64,
}

/// Reliability diagram: discs binned by their top probability into `bins` equal-width bins,
/// each bin's mean confidence against its accuracy; and the expected calibration error (ECE),
/// the disc-weighted mean gap. A calibrated model lies on the diagonal with ECE near 0.
pub fn reliability(truth: &[Class], probs: &[[f32; 4]], bins: usize) -> (Vec<ReliabilityBin>, f64) {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
    for (t, p) in truth.iter().zip(probs) {
        let top = Class::argmax(p);
        let conf = p[top.index()] as f64;
        let b = ((conf * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += conf;
        acc[b].2 += usize::from(top == *t);
    }
    let n = truth.len().max(1) as f64;
    let mut ece = 0.0;
    let out = acc
        .iter()
        .enumerate()
        .map(|(b, &(count, conf, right))| {
            let c = div(conf, count as f64);
            let a = div(right as f64, count as f64);
            ece += count as f64 / n * (c - a).abs();
            ReliabilityBin {
                lo: b as f64 / bins as f64,
                hi: (b + 1) as f64 / bins as f64,
                n: count,
                confidence: c,
                accuracy: a,
            }
        })
        .collect();
    (out, ece)
}

/// a / b with 0/0 counted as 0, as scikit-learn does: an empty bin or a class never predicted
/// scores 0, not NaN.
pub(super) fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_curve_steps_through_the_ranking_and_its_area_is_the_auc() {
        // Ranking by score: + - + - (+ at 0.9 and 0.5, - at 0.7 and 0.1).
        let scores = [0.9, 0.7, 0.5, 0.1];
        let pos = [true, false, true, false];
        let roc = roc_curve(&scores, &pos);
        assert_eq!(
            roc,
            vec![(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
        let area: f64 = roc
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!((area - auc(&scores, &pos)).abs() < 1e-12);
        assert!((area - 0.75).abs() < 1e-12);
        // Tied scores move diagonally, as the half-credit AUC counts them.
        assert_eq!(
            roc_curve(&[0.5, 0.5], &[true, false]),
            vec![(0.0, 0.0), (1.0, 1.0)]
        );
    }

    #[test]
    fn reliability_bins_confidence_against_accuracy() {
        use Class::*;
        let p = |top: usize, v: f32| {
            let mut a = [(1.0 - v) / 3.0; 4];
            a[top] = v;
            a
        };
        // Four discs at confidence 0.95, three right; two at 0.55, one right.
        let truth = [Normal, Normal, Normal, Wavy, Notched, Notched];
        let probs = [
            p(0, 0.95),
            p(0, 0.95),
            p(0, 0.95),
            p(0, 0.95),
            p(2, 0.55),
            p(1, 0.55),
        ];
        let (bins, ece) = reliability(&truth, &probs, 10);
        assert_eq!(bins[9].n, 4);
        assert!(
            (bins[9].confidence - 0.95).abs() < 1e-6 && (bins[9].accuracy - 0.75).abs() < 1e-12
        );
        assert_eq!(bins[5].n, 2);
        assert!((bins[5].accuracy - 0.5).abs() < 1e-12);
        // ECE = 4/6 * 0.2 + 2/6 * 0.05
        assert!(
            (ece - (4.0 / 6.0 * 0.2 + 2.0 / 6.0 * 0.05)).abs() < 1e-6,
            "{ece}"
        );
    }

    #[test]
    fn auc_of_a_hand_checked_ranking() {
        // Positives 0.4 and 0.8 above both negatives 0.1 and 0.35: all 4 pairs right, AUC 1.
        // With the first positive at 0.3 it falls below the 0.35 negative: 3 of 4 pairs, 0.75.
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, true, false, true]),
            1.0
        );
        assert_eq!(
            auc(&[0.1, 0.3, 0.35, 0.8], &[false, true, false, true]),
            0.75
        );
        // A tie counts half: pairs (0.5 vs 0.5) = 0.5, (0.5 vs 0.2) = 1 -> 0.75.
        assert_eq!(auc(&[0.5, 0.5, 0.2], &[true, false, false]), 0.75);
        assert!(auc(&[0.1, 0.2], &[true, true]).is_nan());
    }
}
