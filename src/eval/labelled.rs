//! What `evaluate` and `train` report on any labelled set: Table 3 ([`super::metrics`]) where
//! the truth has the four classes, lesion-vs-normal ([`super::lesion`]) always. Apart from both
//! so neither depends on the other.

use crate::class::{Class, Label};

/// Everything `evaluate` reports on a labelled set. Where every label is one of the four
/// classes: Table 3 ([`super::metrics::evaluate`]) plus lesion-vs-normal with the classes collapsed. Where some
/// are `lesion` (type unknown, e.g. SPIDER): `n` and lesion-vs-normal only, since Table 3 needs
/// the type. Lesion-vs-normal resamples `subjects`.
pub fn evaluate_labelled(
    truth: &[Label],
    probs: &[[f32; 4]],
    subjects: &[String],
    resamples: usize,
    seed: u64,
) -> serde_json::Value {
    let lesion: Vec<bool> = truth.iter().map(|l| l.is_lesion()).collect();
    let p_lesion: Vec<f64> = probs.iter().map(|p| 1.0 - p[0] as f64).collect();
    let binary = super::lesion::evaluate(&lesion, &p_lesion, subjects, resamples, seed);
    let classes: Option<Vec<Class>> = truth.iter().map(|l| l.class()).collect();
    let mut out = match classes {
        Some(classes) => super::metrics::evaluate(&classes, probs, resamples, seed),
        None => {
            serde_json::json!({"n": truth.len(), "labels": "binary (normal / lesion): Table 3 needs the lesion type"})
        }
    };
    out["lesion_vs_normal"] = serde_json::to_value(binary).expect("json");
    out
}
