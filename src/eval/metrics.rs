//! The paper's Table 3 for any model on any labelled set: accuracy, per-class sensitivity, the
//! confusion matrix, and one-vs-rest AUC, accuracy, precision, recall, specificity and F1
//! macro-averaged over the classes, each with the mean and 95 % interval of a seeded bootstrap.

use super::curves::{auc, div, reliability};
use crate::class::Class;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One metric: its value on the whole set and its bootstrap distribution summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub point: f64,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Estimate {
    /// `point` with the mean and 95 % percentile interval of its bootstrap `samples` (all three
    /// equal to `point` when there are none).
    pub fn from_samples(point: f64, mut samples: Vec<f64>) -> Estimate {
        if samples.is_empty() {
            return Estimate {
                point,
                mean: point,
                lo: point,
                hi: point,
            };
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let q = |f: f64| samples[((f * (n - 1) as f64).round() as usize).min(n - 1)];
        Estimate {
            point,
            mean: samples.iter().sum::<f64>() / n as f64,
            lo: q(0.025),
            hi: q(0.975),
        }
    }
}

/// Rows = truth, columns = prediction.
pub fn confusion(truth: &[Class], pred: &[Class]) -> [[usize; 4]; 4] {
    let mut m = [[0; 4]; 4];
    for (t, p) in truth.iter().zip(pred) {
        m[t.index()][p.index()] += 1;
    }
    m
}

/// Bins of [`evaluate`]'s reliability diagram: ten, as is usual, so each holds enough discs on a
/// few hundred.
pub const RELIABILITY_BINS: usize = 10;

/// The one-vs-rest metrics [`evaluate`] macro-averages over the classes, in Table 3's order.
pub const MACRO_METRICS: [&str; 6] = [
    "auc",
    "ovr_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
];

/// Point values of every metric on one set.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub accuracy: f64,
    pub sensitivity: [f64; 4],
    pub auc: f64,
    pub ovr_accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub specificity: f64,
    pub f1: f64,
}

/// All metrics on one (re)sample. Macro averages skip classes absent from the sample's truth
/// for AUC (undefined there) and count 0/0 as 0 elsewhere, as scikit-learn does.
pub fn compute(truth: &[Class], probs: &[[f32; 4]]) -> Point {
    let pred: Vec<Class> = probs.iter().map(Class::argmax).collect();
    let m = confusion(truth, &pred);
    let n = truth.len() as f64;
    let correct: usize = (0..4).map(|k| m[k][k]).sum();
    let mut sens = [0.0; 4];
    let (mut auc_sum, mut auc_n) = (0.0, 0.0);
    let (mut acc, mut prec, mut rec, mut spec, mut f1) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for k in 0..4 {
        let tp = m[k][k] as f64;
        let fn_: f64 = (0..4).filter(|&j| j != k).map(|j| m[k][j] as f64).sum();
        let fp: f64 = (0..4).filter(|&j| j != k).map(|j| m[j][k] as f64).sum();
        let tn = n - tp - fn_ - fp;
        sens[k] = div(tp, tp + fn_);
        let p = div(tp, tp + fp);
        let r = div(tp, tp + fn_);
        acc += (tp + tn) / n;
        prec += p;
        rec += r;
        spec += div(tn, tn + fp);
        f1 += div(2.0 * p * r, p + r);
        let scores: Vec<f64> = probs.iter().map(|p| p[k] as f64).collect();
        let pos: Vec<bool> = truth.iter().map(|t| t.index() == k).collect();
        let a = auc(&scores, &pos);
        if a.is_finite() {
            auc_sum += a;
            auc_n += 1.0;
        }
    }
    Point {
        accuracy: correct as f64 / n,
        sensitivity: sens,
        auc: div(auc_sum, auc_n),
        ovr_accuracy: acc / 4.0,
        precision: prec / 4.0,
        recall: rec / 4.0,
        specificity: spec / 4.0,
        f1: f1 / 4.0,
    }
}

fn flatten(p: &Point) -> Vec<f64> {
    let mut v = vec![
        p.accuracy,
        p.auc,
        p.ovr_accuracy,
        p.precision,
        p.recall,
        p.specificity,
        p.f1,
    ];
    v.extend(p.sensitivity);
    v
}

/// Table 3 with bootstrap intervals, in the JSON shape of SPEC.md's `evaluate --json`.
pub fn evaluate(
    truth: &[Class],
    probs: &[[f32; 4]],
    resamples: usize,
    seed: u64,
) -> serde_json::Value {
    let point = compute(truth, probs);
    let n = truth.len();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut samples: Vec<Vec<f64>> = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        let t: Vec<Class> = idx.iter().map(|&i| truth[i]).collect();
        let p: Vec<[f32; 4]> = idx.iter().map(|&i| probs[i]).collect();
        samples.push(flatten(&compute(&t, &p)));
    }
    let pv = flatten(&point);
    let est = |k: usize| Estimate::from_samples(pv[k], samples.iter().map(|s| s[k]).collect());
    let pred: Vec<Class> = probs.iter().map(Class::argmax).collect();
    let (bins, ece) = reliability(truth, probs, RELIABILITY_BINS);
    let per_class: serde_json::Map<String, serde_json::Value> = Class::ALL
        .iter()
        .map(|c| (c.id().to_string(), serde_json::json!({"sensitivity": est(7 + c.index()), "n": truth.iter().filter(|t| *t == c).count()})))
        .collect();
    serde_json::json!({
        "n": n,
        "accuracy": est(0),
        "auc": est(1),
        "ovr_accuracy": est(2),
        "precision": est(3),
        "recall": est(4),
        "specificity": est(5),
        "f1": est(6),
        "per_class": per_class,
        "confusion": confusion(truth, &pred),
        "reliability": {"ece": ece, "bins": bins},
        "bootstrap": {"resamples": resamples, "seed": seed},
    })
}

/// K-fold cross-validation summary: for each metric of [`evaluate`], the mean and sample
/// standard deviation of its point value over the folds (the paper reports mean ± sd), and the
/// per-fold values.
pub fn cross_validation(folds: &[serde_json::Value]) -> serde_json::Value {
    let summary = |get: &dyn Fn(&serde_json::Value) -> Option<f64>| {
        let v: Vec<f64> = folds.iter().filter_map(get).collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n.max(1.0);
        let sd = if v.len() > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        serde_json::json!({"mean": mean, "sd": sd, "folds": v})
    };
    let mut out = serde_json::json!({
        "k": folds.len(),
        "n": folds.iter().filter_map(|f| f["n"].as_u64()).sum::<u64>(),
    });
    for key in std::iter::once("accuracy").chain(MACRO_METRICS) {
        out[key] = summary(&|f| f[key]["point"].as_f64());
    }
    for c in Class::ALL {
        out["per_class"][c.id()]["sensitivity"] =
            summary(&|f| f["per_class"][c.id()]["sensitivity"]["point"].as_f64());
    }
    for key in ["auc", "sensitivity", "specificity", "accuracy"] {
        out["lesion_vs_normal"][key] = summary(&|f| f["lesion_vs_normal"][key]["point"].as_f64());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_validation_reports_mean_and_sample_sd_of_the_folds() {
        let fold = |acc: f64| serde_json::json!({"n": 10, "accuracy": {"point": acc}, "per_class": {"wavy": {"sensitivity": {"point": acc / 2.0}}}});
        let cv = cross_validation(&[fold(0.8), fold(0.9), fold(1.0)]);
        assert_eq!(cv["k"], 3);
        assert_eq!(cv["n"], 30);
        assert!((cv["accuracy"]["mean"].as_f64().unwrap() - 0.9).abs() < 1e-12);
        assert!((cv["accuracy"]["sd"].as_f64().unwrap() - 0.1).abs() < 1e-12);
        assert!(
            (cv["per_class"]["wavy"]["sensitivity"]["mean"]
                .as_f64()
                .unwrap()
                - 0.45)
                .abs()
                < 1e-12
        );
    }

    /// Probabilities that put all mass on `c`.
    fn one_hot(c: usize) -> [f32; 4] {
        let mut p = [0.0; 4];
        p[c] = 1.0;
        p
    }

    #[test]
    fn the_papers_own_counts_give_88_1_percent() {
        // Validation set of the paper: per class correct/total 104/114, 80/97, 67/72, 24/29.
        let per_class = [(104, 114), (80, 97), (67, 72), (24, 29)];
        let (mut truth, mut probs) = (Vec::new(), Vec::new());
        for (k, &(ok, total)) in per_class.iter().enumerate() {
            for i in 0..total {
                truth.push(Class::ALL[k]);
                probs.push(one_hot(if i < ok { k } else { (k + 1) % 4 }));
            }
        }
        let p = compute(&truth, &probs);
        assert_eq!(truth.len(), 312);
        assert!((p.accuracy - 275.0 / 312.0).abs() < 1e-12);
        assert!((p.accuracy - 0.881).abs() < 5e-4);
        let want = [104.0 / 114.0, 80.0 / 97.0, 67.0 / 72.0, 24.0 / 29.0];
        for (got, want) in p.sensitivity.iter().zip(want) {
            assert!((got - want).abs() < 1e-12);
        }
    }

    #[test]
    fn small_confusion_matrix_by_hand() {
        // Truth: normal x3, wavy x2, notched x1, schmorl x2. Predictions below.
        use Class::*;
        let truth = [
            Normal, Normal, Normal, Wavy, Wavy, Notched, Schmorl, Schmorl,
        ];
        let pred = [0, 0, 1, 1, 0, 2, 3, 2];
        let probs: Vec<[f32; 4]> = pred.iter().map(|&c| one_hot(c)).collect();
        let m = confusion(&truth, &pred.map(|c| Class::ALL[c]));
        assert_eq!(m, [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]);
        let p = compute(&truth, &probs);
        assert!((p.accuracy - 5.0 / 8.0).abs() < 1e-12);
        // Precision per class: 2/3, 1/2, 1/2, 1/1; recall: 2/3, 1/2, 1/1, 1/2.
        assert!((p.precision - (2.0 / 3.0 + 0.5 + 0.5 + 1.0) / 4.0).abs() < 1e-12);
        assert!((p.recall - (2.0 / 3.0 + 0.5 + 1.0 + 0.5) / 4.0).abs() < 1e-12);
        // Specificity: normal 4/5, wavy 5/6, notched 6/7, schmorl 6/6.
        assert!((p.specificity - (0.8 + 5.0 / 6.0 + 6.0 / 7.0 + 1.0) / 4.0).abs() < 1e-12);
        // F1: 2/3, 1/2, 2/3, 2/3.
        assert!((p.f1 - (2.0 / 3.0 + 0.5 + 2.0 / 3.0 + 2.0 / 3.0) / 4.0).abs() < 1e-12);
        // One-vs-rest accuracy: (TP+TN)/n per class: 6/8, 6/8, 7/8, 7/8.
        assert!((p.ovr_accuracy - (6.0 + 6.0 + 7.0 + 7.0) / 32.0).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_point() {
        let truth: Vec<Class> = (0..200).map(|i| Class::ALL[i % 4]).collect();
        let probs: Vec<[f32; 4]> = (0..200)
            .map(|i| one_hot(if i % 5 == 0 { (i + 1) % 4 } else { i % 4 }))
            .collect();
        let a = evaluate(&truth, &probs, 200, 1);
        let b = evaluate(&truth, &probs, 200, 1);
        assert_eq!(a, b);
        let acc = &a["accuracy"];
        let (lo, hi, point) = (
            acc["lo"].as_f64().unwrap(),
            acc["hi"].as_f64().unwrap(),
            acc["point"].as_f64().unwrap(),
        );
        assert!(lo < point && point < hi && hi - lo < 0.2, "{acc}");
        assert!((point - 0.8).abs() < 1e-12);
    }
}
