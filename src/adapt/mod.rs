//! Stage 7, adapt: a model tuned to one's own labelled discs, by the one function, [`adapt`],
//! that `endplate adapt` and the page's Adapt button both call. It holds out whole subjects
//! ([`split`]), refits only the last layer on the backbone's pooled features
//! (`model::adapt::fit`), checks the base and the adapted layer on the held-out discs (accuracy
//! and lesion-vs-normal as the labels allow: `eval::lesion`), recalibrates, and writes the
//! adapted model file with a card that records all of it. Uses `model` and `eval`.
//!
//! The features come from the caller (the CLI from a manifest's ROIs, the page from the discs
//! the user labelled, slice by slice), so this stage never touches images.

pub mod split;

use crate::class::{Class, Label};
use crate::error::{Error, Result};
use crate::eval::lesion;
use crate::model::adapt::{check_labels, fit, FitOptions, Layer};
use crate::model::calibration::Calibration;
use crate::model::card::ModelCard;
use crate::model::file::{encode_with_card, parse_proto, read_card};
use crate::model::last_layer::{has_features, no_features, read_last_layer, replace_last_layer};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One labelled disc: who it belongs to (the held-out split keeps a subject whole), a name to
/// show (its level, its row), its label, and its pooled features under the base model.
#[derive(Debug, Clone)]
pub struct Example {
    pub subject: String,
    pub name: String,
    pub label: Label,
    pub features: Vec<f32>,
}

/// The held-out discs' figures under one model. `accuracy`: four-class, when every held-out
/// label is one of the four classes; `lesion_vs_normal`: when they include normal and lesion
/// discs (AUC of P(lesion), and sensitivity, specificity, accuracy at P(lesion) >= 0.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub accuracy: Option<f64>,
    pub lesion_vs_normal: Option<lesion::LesionPoint>,
}

/// One held-out disc under the base and the adapted model (calibrated probabilities).
#[derive(Debug, Clone, Serialize)]
pub struct HeldDisc {
    pub subject: String,
    pub name: String,
    pub label: &'static str,
    pub before: [f32; 4],
    pub after: [f32; 4],
}

/// What an adaptation did and how it fared: the CLI's `--json`, the page's report and (less
/// the per-disc list) the adapted card's `adaptation`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub base_model: serde_json::Value,
    pub date: String,
    /// Discs per label, fitted and held out.
    pub fit: BTreeMap<&'static str, usize>,
    pub held_out: BTreeMap<&'static str, usize>,
    pub subjects: [usize; 2],
    pub options: FitOptions,
    pub before: Figures,
    pub after: Figures,
    pub discs: Vec<HeldDisc>,
    /// The check in one sentence, as the page and the CLI show it.
    pub summary: String,
}

/// The adapted model file, its card and the report.
#[derive(Debug)]
pub struct Adapted {
    pub bytes: Vec<u8>,
    pub card: ModelCard,
    pub report: Report,
}

/// Figures of `probs` against `labels`.
fn figures(labels: &[Label], probs: &[[f32; 4]]) -> Figures {
    let classes: Option<Vec<Class>> = labels.iter().map(|l| l.class()).collect();
    let accuracy = classes.filter(|c| !c.is_empty()).map(|c| {
        let right = c
            .iter()
            .zip(probs)
            .filter(|(c, p)| Class::argmax(p) == **c)
            .count();
        right as f64 / c.len() as f64
    });
    let truth: Vec<bool> = labels.iter().map(|l| l.is_lesion()).collect();
    let both = truth.iter().any(|&t| t) && truth.iter().any(|&t| !t);
    let lesion_vs_normal = both.then(|| {
        let p: Vec<f64> = probs.iter().map(|p| 1.0 - p[0] as f64).collect();
        lesion::compute(&truth, &p)
    });
    Figures {
        accuracy,
        lesion_vs_normal,
    }
}

fn counts(labels: impl Iterator<Item = Label>) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for l in labels {
        *m.entry(l.id()).or_insert(0) += 1;
    }
    m
}

/// The held-out check in words: before and after, whether the adapted model did better, and
/// how many discs that rests on.
fn summary(n: usize, subjects: usize, before: &Figures, after: &Figures) -> String {
    let pct = |v: f64| format!("{:.1} %", 100.0 * v);
    let mut parts = Vec::new();
    // (before, after) of every figure shown, for the verdict.
    let mut pairs = Vec::new();
    if let (Some(b), Some(a)) = (&before.lesion_vs_normal, &after.lesion_vs_normal) {
        parts.push(format!(
            "AUC of P(lesion) {:.3} before, {:.3} after; lesion-vs-normal accuracy {} before, {} after",
            b.auc,
            a.auc,
            pct(b.accuracy),
            pct(a.accuracy)
        ));
        pairs.extend([(b.auc, a.auc), (b.accuracy, a.accuracy)]);
    }
    if let (Some(b), Some(a)) = (before.accuracy, after.accuracy) {
        parts.push(format!(
            "four-class accuracy {} before, {} after",
            pct(b),
            pct(a)
        ));
        pairs.push((b, a));
    }
    let better = pairs.iter().all(|(b, a)| a >= b) && pairs.iter().any(|(b, a)| a > b);
    let worse = pairs.iter().all(|(b, a)| a <= b) && pairs.iter().any(|(b, a)| a < b);
    let verdict = if better {
        "The adapted model did better on them."
    } else if worse {
        "The adapted model did worse on them than the original: keep the original."
    } else if pairs.iter().all(|(b, a)| a == b) {
        "The adapted model did neither better nor worse on them."
    } else {
        "The adapted model did better on some figures and worse on others."
    };
    format!(
        "On {n} held-out disc{} of {subjects} subject{} the fit never saw: {}. {verdict}{} Only \
         the last layer was refitted.",
        if n == 1 { "" } else { "s" },
        if subjects == 1 { "" } else { "s" },
        parts.join("; "),
        if n < 100 {
            " So few discs give a rough figure."
        } else {
            ""
        }
    )
}

/// Adapt the model `base_bytes` (named `base_name`) to `examples`: hold out whole subjects,
/// refit the last layer on the rest, check both layers on the held-out discs, recalibrate, and
/// return the adapted model file. `date` is written into the card as given (the page and the CLI
/// each know today's date; wasm has no clock here). Refuses, with the reason and the fix, a model
/// without the features output, too few discs of a label, one label only, one subject, features
/// of the wrong width.
pub fn adapt(
    base_name: &str,
    base_bytes: &[u8],
    examples: &[Example],
    date: &str,
    options: FitOptions,
) -> Result<Adapted> {
    let proto = parse_proto(base_name, base_bytes)?;
    let base_card = read_card(base_name, &proto)?;
    if !has_features(&proto) {
        return Err(no_features(base_name));
    }
    let base = read_last_layer(base_name, &proto)?;
    let width = base.weights[0].len();
    if let Some(e) = examples.iter().find(|e| e.features.len() != width) {
        return Err(Error::Invalid(format!(
            "disc {} of {} has {} features, the last layer of {base_name} takes {width}: the \
             features must come from this model",
            e.name,
            e.subject,
            e.features.len()
        )));
    }
    let labels: Vec<Label> = examples.iter().map(|e| e.label).collect();
    check_labels(&labels, crate::model::adapt::MIN_PER_LABEL)?;
    let subjects: Vec<&str> = examples.iter().map(|e| e.subject.as_str()).collect();
    let held = split::held_out(&subjects, &labels)?;
    let part = |h: bool| -> Vec<&Example> {
        examples
            .iter()
            .zip(&held)
            .filter(|(_, &x)| x == h)
            .map(|(e, _)| e)
            .collect()
    };
    let (fitted, checked) = (part(false), part(true));
    let fit_features: Vec<Vec<f32>> = fitted.iter().map(|e| e.features.clone()).collect();
    let fit_labels: Vec<Label> = fitted.iter().map(|e| e.label).collect();
    let layer = fit(&fit_features, &fit_labels, &base, options)?;

    // Recalibrate on the fitted discs (the held-out ones stay out of everything but the check).
    let logits = |l: &Layer, es: &[&Example]| -> Vec<[f32; 4]> {
        es.iter().map(|e| l.logits4(&e.features)).collect()
    };
    let calibration = Calibration::fit_platt(&logits(&layer, &fitted), &fit_labels)?;
    let probs = |cal: &Calibration, ls: Vec<[f32; 4]>| -> Vec<[f32; 4]> {
        ls.iter().map(|l| cal.probabilities(l)).collect()
    };
    let before = probs(&base_card.calibration, logits(&base, &checked));
    let after = probs(&calibration, logits(&layer, &checked));
    let held_labels: Vec<Label> = checked.iter().map(|e| e.label).collect();
    let (fb, fa) = (
        figures(&held_labels, &before),
        figures(&held_labels, &after),
    );
    let n_subjects = |es: &[&Example]| {
        es.iter()
            .map(|e| e.subject.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let subjects = [n_subjects(&fitted), n_subjects(&checked)];
    let report = Report {
        base_model: serde_json::json!({
            "name": base_card.name,
            "file": base_name,
            "sha256": format!("{:x}", Sha256::digest(base_bytes)),
        }),
        date: date.to_string(),
        fit: counts(fit_labels.iter().copied()),
        held_out: counts(held_labels.iter().copied()),
        subjects,
        options,
        summary: summary(checked.len(), subjects[1], &fb, &fa),
        before: fb,
        after: fa,
        discs: checked
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(e, (b, a))| HeldDisc {
                subject: e.subject.clone(),
                name: e.name.clone(),
                label: e.label.id(),
                before: *b,
                after: *a,
            })
            .collect(),
    };

    let mut card = base_card.clone();
    card.name = format!("{} adapted {date}", base_card.name);
    card.calibration = calibration;
    card.metrics = serde_json::Value::Null;
    let mut record = serde_json::to_value(&report).map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(r) = record.as_object_mut() {
        r.remove("discs");
        r.insert(
            "method".into(),
            "last layer only: class-balanced multinomial logistic regression on the 512 pooled \
             features, pulled towards the base layer (options.lambda, standardised features), \
             Platt calibration on the fitted discs; the backbone is the base model's"
                .into(),
        );
        r.insert("base_metrics".into(), base_card.metrics.clone());
        r.insert("base_adaptation".into(), base_card.adaptation.clone());
    }
    card.adaptation = record;
    card.warning = base_card.display_warning();
    let proto = replace_last_layer(base_name, proto, &layer)?;
    let bytes = encode_with_card(base_name, proto, &card)?;
    Ok(Adapted {
        bytes,
        card,
        report,
    })
}
