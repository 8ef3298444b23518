//! Adaptation (`endplate::adapt`, `endplate adapt`): on phantom discs of a shifted style (other
//! contrast and noise than the bundled model learnt from), the adapted model does better than the
//! base on held-out subjects of that style; the model file it writes loads, keeps the features
//! output and gives the logits its report promised; the CLI writes the same model from a
//! manifest; bad input is refused with a message.

mod common;
use common::endplate;

use endplate::adapt::{adapt, Example};
use endplate::model::adapt::FitOptions;
use endplate::model::file::{parse_proto, BatchNorm};
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::{Classifier, Label, Roi};
use prost::Message;

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/endplate-default.onnx");

fn bundled_bytes() -> Vec<u8> {
    std::fs::read(BUNDLED).expect("the bundled model is committed in models/")
}

/// A scanner unlike the phantoms the model learnt from: a strong gamma (dark discs and bodies,
/// bright fluid stays bright) and noise, applied to the slice before the ROI's own contrast
/// stretch (which would undo a plain gain).
fn shifted(slice: &mut endplate::Slice, seed: u64) {
    let max = slice.pixels.iter().copied().fold(0.0f32, f32::max).max(1.0);
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut uniform = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32
    };
    for v in slice.pixels.iter_mut() {
        let noise = (uniform() + uniform() + uniform() - 1.5) * 0.05;
        *v = max * ((*v / max).powf(2.5) + noise).clamp(0.0, 1.0);
    }
}

/// The discs of `subjects` phantom subjects in the shifted style, with their ROIs.
fn shifted_discs(seed: u64, subjects: usize, p: &endplate::RoiParams) -> Vec<(String, Label, Roi)> {
    (0..subjects)
        .flat_map(|i| {
            let mut ph = render(&plan_subject(seed, i, ClassMix::Balanced, 16));
            shifted(&mut ph.slice, seed + i as u64);
            let corners: Vec<_> = ph.discs.iter().map(|d| d.corners).collect();
            let rois = Roi::extract_many(&ph.slice, &corners, p).unwrap();
            ph.discs
                .iter()
                .zip(rois)
                .map(|(d, roi)| (format!("s{i}"), Label::Class(d.class), roi))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn shifted_style_phantoms_are_learnt_on_held_out_subjects() {
    let bytes = bundled_bytes();
    let model = Classifier::from_bytes(BUNDLED, &bytes).unwrap();
    let p = model.card().preprocessing.clone();
    let discs = shifted_discs(4242, 40, &p);
    let rois: Vec<Roi> = discs.iter().map(|d| d.2.clone()).collect();
    let features = model.features(&rois).unwrap();
    let examples: Vec<Example> = discs
        .iter()
        .zip(features)
        .map(|((s, l, _), features)| Example {
            subject: s.clone(),
            name: String::new(),
            label: *l,
            features,
        })
        .collect();
    let a = adapt(
        BUNDLED,
        &bytes,
        &examples,
        "2025-01-01",
        FitOptions::default(),
    )
    .unwrap();
    let r = &a.report;
    let (before, after) = (r.before.accuracy.unwrap(), r.after.accuracy.unwrap());
    eprintln!("{}", r.summary);
    assert!(r.discs.len() >= 40, "{} held-out discs", r.discs.len());
    // The bundled model since session 17 reads this style better than its predecessors (40 %
    // where they had 24 %), so there is less to gain: 40 -> 56 % measured, AUC 0.63 -> 0.81;
    // session 19's (12 epochs) 42 -> 66 %, AUC 0.76 -> 0.84; with its moved copies and refitted
    // P(normal) 46 -> 68 %, AUC 0.75 -> 0.87.
    assert!(
        before < 0.5,
        "the base model handles this style poorly: {before}"
    );
    assert!(
        after >= before + 0.15,
        "adaptation improves four-class accuracy on held-out subjects: {before} -> {after}"
    );
    let (lb, la) = (
        r.before.lesion_vs_normal.as_ref().unwrap().auc,
        r.after.lesion_vs_normal.as_ref().unwrap().auc,
    );
    assert!(la > lb + 0.05, "AUC of P(lesion) {lb} -> {la}");

    // The written file: loads, keeps the features output, and on the held-out discs gives the
    // probabilities the report states (the network's own Gemm against the report's f64 layer).
    let adapted = Classifier::from_bytes("adapted.onnx", &a.bytes).unwrap();
    assert_eq!(adapted.features_width(), Some(512));
    let card = adapted.card();
    assert_eq!(card.adaptation["base_model"]["name"], model.card().name);
    assert_eq!(card.adaptation["date"], "2025-01-01");
    assert!(card.metrics.is_null() && !card.adaptation["base_metrics"].is_null());
    assert!(endplate::model::card::figures(card)
        .iter()
        .any(|f| f.contains("Adapted")));
    let held: Vec<Roi> = discs
        .iter()
        .filter(|d| r.discs.iter().any(|h| h.subject == d.0))
        .map(|d| d.2.clone())
        .collect();
    let probs = adapted.classify(&held).unwrap();
    for (p, h) in probs.iter().zip(&r.discs) {
        for k in 0..4 {
            assert!(
                (p.probabilities[k] - h.after[k]).abs() < 1e-4,
                "{:?} vs {:?}",
                p.probabilities,
                h.after
            );
        }
    }
    // The original model's probabilities are the report's "before".
    let orig = model.classify(&held).unwrap();
    for (p, h) in orig.iter().zip(&r.discs) {
        assert!((p.probabilities[0] - h.before[0]).abs() < 1e-4);
    }
}

/// Examples with random features for the refusal tests (no network needed).
fn fake(labels: &[(&str, Label)]) -> Vec<Example> {
    labels
        .iter()
        .enumerate()
        .map(|(i, (s, l))| Example {
            subject: s.to_string(),
            name: format!("d{i}"),
            label: *l,
            features: (0..512).map(|j| ((i * 7 + j) % 13) as f32 / 13.0).collect(),
        })
        .collect()
}

#[test]
fn refusals_name_the_reason() {
    use endplate::Class::*;
    let bytes = bundled_bytes();
    let go = |e: &[Example]| {
        adapt("m.onnx", &bytes, e, "2025-01-01", FitOptions::default())
            .unwrap_err()
            .to_string()
    };
    let subject = |i: usize| ["a", "b", "c", "d"][i % 4];
    let one: Vec<_> = (0..30)
        .map(|i| (subject(i), Label::Class(Normal)))
        .collect();
    assert!(go(&fake(&one)).contains("at least two labels"));
    let mut few = one.clone();
    few.extend((0..5).map(|i| (subject(i), Label::Lesion)));
    let e = go(&fake(&few));
    assert!(
        e.contains("`lesion` has 5 discs") && e.contains("at least 8"),
        "{e}"
    );
    let onesubject: Vec<_> = (0..20)
        .map(|i| {
            (
                "a",
                if i < 10 {
                    Label::Lesion
                } else {
                    Label::Class(Normal)
                },
            )
        })
        .collect();
    assert!(go(&fake(&onesubject)).contains("one subject"));
    let mut narrow = fake(&few[..10]);
    narrow[3].features.truncate(100);
    let e = adapt("m.onnx", &bytes, &narrow, "d", FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has 100 features") && e.contains("takes 512"),
        "{e}"
    );

    // A model without the features output still classifies, and adaptation refuses it.
    let mut proto = parse_proto("m", &bytes).unwrap();
    let g = proto.graph.as_mut().unwrap();
    g.output.retain(|o| o.name != "features");
    g.node.retain(|n| n.name != "features");
    let old = proto.encode_to_vec();
    let classifier = Classifier::from_bytes("old.onnx", &old).unwrap();
    assert_eq!(classifier.features_width(), None);
    let e = classifier
        .features_input(&vec![0.0; 3 * 128 * 128])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("old.onnx") && e.contains("expose_features"),
        "{e}"
    );
    let ok: Vec<_> = (0..40)
        .map(|i| {
            (
                subject(i),
                if i % 2 == 0 {
                    Label::Lesion
                } else {
                    Label::Class(Normal)
                },
            )
        })
        .collect();
    let e = adapt("old.onnx", &old, &fake(&ok), "d", FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("old.onnx") && e.contains("no `features` output"),
        "{e}"
    );
    // The same labels on the bundled model are accepted.
    adapt("m.onnx", &bytes, &fake(&ok), "d", FitOptions::default()).unwrap();
}

#[test]
fn written_models_have_the_features_output_and_the_last_layer_reproduces_the_logits() {
    let (bytes, _) = common::random_model(5, BatchNorm::Fold);
    let model = Classifier::from_bytes("r.onnx", &bytes).unwrap();
    assert_eq!(model.features_width(), Some(512));
    let layer =
        endplate::model::last_layer::read_last_layer("r", &parse_proto("r", &bytes).unwrap())
            .unwrap();
    let input: Vec<f32> = (0..2 * 3 * 128 * 128)
        .map(|i| ((i * 31) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let logits = model.logits(input.clone(), 2).unwrap();
    let features = model.features_input(&input).unwrap();
    for (l, f) in logits.iter().zip(&features) {
        for (a, b) in l.iter().zip(layer.logits4(f)) {
            assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{l:?} vs {f:?}");
        }
    }
}

/// A phantom data set with binary labels (normal / lesion), as a clinic's gradings might be.
fn binary_phantoms(dir: &std::path::Path, subjects: usize) -> std::path::PathBuf {
    let (path, text) = common::synth(dir, subjects, 31);
    let binary: String = text
        .lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            if !matches!(cells[3], "label" | "normal") {
                cells[3] = "lesion";
            }
            cells.join(",") + "\n"
        })
        .collect();
    std::fs::write(&path, binary).unwrap();
    path
}

#[test]
fn cli_writes_the_adapted_model_and_refuses_bad_discs_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = binary_phantoms(dir.path(), 8);
    let out = dir.path().join("adapted.onnx");
    let run = endplate(&[
        "adapt",
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let held = report["discs"].as_array().unwrap();
    assert!(!held.is_empty());
    let fitted: u64 = report["fit"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(fitted as usize + held.len(), 40);
    assert!(report["after"]["lesion_vs_normal"]["auc"].is_number());
    assert!(report["summary"].as_str().unwrap().contains("held-out"));
    // The file is a classifier whose card records the adaptation; classify reads it.
    let m = Classifier::from_bytes("a", &std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(m.card().adaptation["fit"], report["fit"]);
    assert_eq!(
        m.card().adaptation["base_model"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // A disc outside its slice: the row is named, nothing is written.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let cells: Vec<String> = lines[3].split(',').map(String::from).collect();
    lines[3] = format!(
        "{},5000,5000,5100,5000,5000,5100,5100,5100",
        cells[..4].join(",")
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let gone = dir.path().join("never.onnx");
    let run = endplate(&[
        "adapt",
        "--manifest",
        bad.to_str().unwrap(),
        "--out",
        gone.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{e}");
    assert!(e.contains("row 4") || e.contains(&cells[0]), "{e}");
    assert!(!gone.exists());
    // Too few discs: the first two subjects only.
    let few = dir.path().join("few.csv");
    std::fs::write(&few, text.lines().take(11).collect::<Vec<_>>().join("\n")).unwrap();
    let run = endplate(&[
        "adapt",
        "--manifest",
        few.to_str().unwrap(),
        "--out",
        gone.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{e}");
    assert!(e.contains("at least 8") && !gone.exists(), "{e}");
}
