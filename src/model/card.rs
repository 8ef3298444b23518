//! The model card: the JSON under `endplate.card` in the ONNX file's `metadata_props` that makes
//! a model file self-describing — what it expects, how it was made, how good it is.

use super::calibration::Calibration;
use crate::class::Class;
use crate::disc::roi::RoiParams;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The card's `kind` of a classifier (the detector's is `detector`). Cards written before the
/// detector existed have no `kind` and are classifiers.
pub const CLASSIFIER_KIND: &str = "classifier";
pub const CARD_KEY: &str = "endplate.card";

// The network's interface, which every model file must have and every reader checks: kept with
// the card because the card's preprocessing must produce exactly this input.
pub const INPUT_NAME: &str = "input";
pub const OUTPUT_NAME: &str = "logits";
/// The optional second output: the backbone's pooled features, `[N, FEATURES_SIZE]`, the input
/// of the last layer. Readers classify without it; adaptation (`crate::adapt`) needs it, since it
/// refits the last layer on these features. SPEC.md does not name it.
pub const FEATURES_NAME: &str = "features";
/// ResNet18's pooled width.
pub const FEATURES_SIZE: usize = 512;
pub const INPUT_SIZE: usize = 128;
/// The ONNX opset the writer declares.
pub const OPSET: i64 = 13;
/// The card format this build writes and reads.
pub const CARD_VERSION: u32 = 1;
/// Shown wherever a model trained on phantoms is active.
pub const PHANTOM_WARNING: &str = "This model learnt from synthetic phantoms, not from patients. \
It is a demonstration, not a medical device: do not use it for diagnosis.";

/// How the weights came about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Training {
    /// Free text: what data, from where.
    pub data_description: String,
    /// SHA-256 of the training manifest and images, where known.
    pub data_hash: Option<String>,
    /// True when the training data were synthetic phantoms.
    pub synthetic: bool,
    pub epochs: Option<u32>,
    pub seed: Option<u64>,
    /// Where the initial weights came from ("random", "imagenet onnx <sha>", ...).
    pub init: String,
    /// The endplate version that wrote the file.
    pub code_version: String,
    /// Anything else (split, schedule, sampler) as the trainer reports it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format_version: u32,
    pub name: String,
    /// Class ids in logit order; must equal normal, wavy, notched, schmorl.
    pub classes: Vec<String>,
    pub preprocessing: RoiParams,
    /// Run the network on each disc's ROI and on its left-right mirror image (anterior and
    /// posterior swapped), and average the two outputs (logits and pooled features) before the
    /// calibration. Training flips half of its ROIs so, so a network reads both views; their
    /// mean is a little steadier than either (docs/real-mri-experiments.md, "Averaging each disc
    /// with its mirror image": +0.4 points of real cross-validated AUC, within the noise, and 1.6
    /// on the phantoms), at twice the cost per disc.
    /// SPEC.md's ROI itself is never mirrored. Absent in older cards: one view.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror_average: bool,
    pub calibration: Calibration,
    pub training: Training,
    /// Validation metrics in the shape of `evaluate --json`, where measured.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metrics: serde_json::Value,
    /// A plain-language warning the page shows with the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Set on a model whose last layer was refitted to a user's discs (`endplate adapt`, the
    /// page's Adapt): the base model, the discs per label, the date and the held-out check,
    /// as `crate::adapt` writes it. The base model's own `metrics` move in here (as
    /// `base_metrics`), since they no longer describe this model.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub adaptation: serde_json::Value,
}

impl ModelCard {
    /// A card for weights that have not been trained (tests, benchmarks).
    pub fn untrained(name: &str, seed: u64) -> ModelCard {
        ModelCard {
            format_version: CARD_VERSION,
            name: name.to_string(),
            classes: Class::ALL.iter().map(|c| c.id().to_string()).collect(),
            preprocessing: RoiParams::default(),
            mirror_average: false,
            calibration: Calibration::Softmax,
            training: Training {
                data_description: "none: seeded random weights, not trained".into(),
                init: format!("random (seed {seed})"),
                seed: Some(seed),
                code_version: crate::VERSION.into(),
                ..Default::default()
            },
            metrics: serde_json::Value::Null,
            warning: Some("Untrained random weights: the outputs mean nothing.".into()),
            adaptation: serde_json::Value::Null,
        }
    }

    /// Parse and validate a card, saying exactly what is wrong.
    pub fn from_json(source_name: &str, json: &str) -> Result<ModelCard> {
        let value = card_value(source_name, json, CLASSIFIER_KIND)?;
        let card: ModelCard = serde_json::from_value(value)
            .map_err(|e| Error::model(source_name, format!("card field error: {e}")))?;
        let expected: Vec<&str> = Class::ALL.iter().map(|c| c.id()).collect();
        if card.classes != expected {
            return Err(Error::model(
                source_name,
                format!(
                    "card classes {:?} differ from the expected {:?}",
                    card.classes, expected
                ),
            ));
        }
        let p = &card.preprocessing;
        if p.size != INPUT_SIZE {
            return Err(Error::model(
                source_name,
                format!(
                    "card says ROI size {}, the network takes {}",
                    p.size, INPUT_SIZE
                ),
            ));
        }
        if p.std.iter().any(|s| s.is_nan() || *s <= 0.0)
            || p.stretch_low.partial_cmp(&p.stretch_high) != Some(std::cmp::Ordering::Less)
        {
            return Err(Error::model(
                source_name,
                "card preprocessing has a zero std or low >= high stretch",
            ));
        }
        Ok(card)
    }

    /// The warning to show with this model: its own, or the phantom warning when it learnt from
    /// synthetic data.
    pub fn display_warning(&self) -> Option<String> {
        self.warning
            .clone()
            .or_else(|| self.training.synthetic.then(|| PHANTOM_WARNING.to_string()))
    }
}

/// What a classifier's and a detector's file each say to do with the other kind.
fn wrong_kind(kind: &str, wanted: &str) -> String {
    let (this, other) = if wanted == CLASSIFIER_KIND {
        ("a classifier", "give it as the detector (--detector), and a classifier file (kind \"classifier\") as --model")
    } else {
        ("a disc detector", "give it as the classifier (--model), and a detector file (kind \"detector\") as --detector")
    };
    format!("this is a {kind} model (card kind \"{kind}\"), not {this}: {other}")
}

/// A card's JSON, checked for the format version this build reads and for the `kind` wanted
/// (a card without `kind` predates the detector and is a classifier's).
pub(super) fn card_value(source_name: &str, json: &str, wanted: &str) -> Result<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::model(source_name, format!("card `{CARD_KEY}` is not JSON: {e}")))?;
    match value.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == CARD_VERSION as u64 => {}
        Some(v) => {
            return Err(Error::model(
                source_name,
                format!("card format version {v} is not supported: this build of endplate reads version {CARD_VERSION}; upgrade endplate or re-export the model"),
            ))
        }
        None => return Err(Error::model(source_name, "card has no numeric `format_version`")),
    }
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or(CLASSIFIER_KIND);
    if kind != wanted {
        return Err(Error::model(source_name, wrong_kind(kind, wanted)));
    }
    Ok(value)
}

/// The short description of a model that `classify --json` and the page show.
pub fn summary(card: &ModelCard) -> serde_json::Value {
    serde_json::json!({
        "name": card.name,
        "format_version": card.format_version,
        "calibration": match card.calibration { Calibration::Softmax => "softmax", Calibration::Platt { .. } => "platt" },
        "synthetic": card.training.synthetic,
        "data": card.training.data_description,
        "code_version": card.training.code_version,
        "warning": card.display_warning(),
        "figures": figures(card),
    })
}

/// The headline figures a reader should see next to the model, as plain sentences: an
/// adaptation's held-out check (`adaptation`, see `crate::adapt`), the real
/// lesion-vs-normal cross-validation (`metrics.real_cross_validation`, written for a model that
/// learnt from real gradings) and the four-class accuracy on fresh phantoms
/// (`metrics.phantom_test`), each with its interval. Empty when the card has neither.
pub fn figures(card: &ModelCard) -> Vec<String> {
    let m = &card.metrics;
    let pct = |v: &serde_json::Value| {
        let f = |k: &str| v[k].as_f64().map(|x| 100.0 * x);
        match (f("point"), f("lo"), f("hi")) {
            (Some(p), Some(lo), Some(hi)) => Some(format!("{p:.1} % ({lo:.1}–{hi:.1})")),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let a = &card.adaptation;
    if let Some(summary) = a["summary"].as_str() {
        let fitted: u64 = a["fit"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
        out.push(format!(
            "Adapted on {} from {}: last layer refitted on {fitted} labelled discs. {summary}",
            a["date"].as_str().unwrap_or("?"),
            a["base_model"]["name"].as_str().unwrap_or("?"),
        ));
    }
    let real = &m["real_cross_validation"];
    if let Some(auc) = pct(&real["auc"]) {
        // What a user acts on is the call at 50 %: say how often it is right on each side.
        let at_half = match (pct(&real["sensitivity"]), pct(&real["specificity"])) {
            (Some(sens), Some(spec)) => format!(
                " At P(lesion) ≥ 50 % it finds {sens} of the lesions and calls {spec} of the normal discs normal."
            ),
            _ => String::new(),
        };
        out.push(format!(
            "Real MRI: AUC of P(lesion) {auc} over {} discs of {} patients ({}), patient-level {}-fold cross-validation.{at_half} SPIDER's labels are noisy: graded on the whole volume, seen here on one slice.",
            real["n"], real["subjects"], real["data"].as_str().unwrap_or("SPIDER"), real["folds"]
        ));
    }
    let ph = &m["phantom_test"];
    if let Some(acc) = pct(&ph["accuracy"]) {
        out.push(format!(
            "Phantoms: four-class accuracy {acc} on {} fresh synthetic discs; the split among lesion types comes from phantoms only.",
            ph["n"]
        ));
    }
    out
}
