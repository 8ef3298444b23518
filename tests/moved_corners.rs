//! A card's moved copies (`preprocessing.moved_corners`) as every reader runs them, on the
//! bundled model, whose card carries four: the classifier averages the network's outputs over a
//! disc's own ROI and its copies (each with its mirror image where the card says so) before the
//! calibration; an occlusion map still explains the disc's own ROI; input with the wrong number
//! of views is refused. (How much steadier the calls are is measured, not tested:
//! docs/real-mri-experiments.md, "Averaging over moved corners".)

use endplate::model::file::{card_json, encode_with_card, parse_proto};
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::{Classifier, Roi};
use std::path::PathBuf;

fn bundled_bytes() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/endplate-default.onnx");
    std::fs::read(p).expect("the bundled model is committed in models/")
}

/// The bundled classifier as shipped, with its moved copies.
fn bundled() -> Classifier {
    Classifier::from_bytes("bundled", &bundled_bytes()).unwrap()
}

/// The bundled classifier with its card's `preprocessing.moved_corners` removed: one view per
/// disc, everything else the same.
fn bundled_without_copies() -> Classifier {
    let proto = parse_proto("bundled", &bundled_bytes()).unwrap();
    let mut card: serde_json::Value =
        serde_json::from_str(&card_json("bundled", &proto).unwrap()).unwrap();
    card["preprocessing"]
        .as_object_mut()
        .unwrap()
        .remove("moved_corners");
    let bytes = encode_with_card("bundled", proto, &card).unwrap();
    Classifier::from_bytes("bundled", &bytes).unwrap()
}

#[test]
fn the_outputs_are_averaged_over_the_own_roi_and_each_copy_before_the_calibration() {
    let plain = bundled_without_copies();
    let moved = bundled();
    assert_eq!(moved.card().preprocessing.views_per_disc(), 5);
    assert!(moved.card().mirror_average);
    let ph = render(&plan_subject(9001, 3, ClassMix::Paper, 16));
    let corners: Vec<_> = ph.discs.iter().map(|d| d.corners).collect();
    let p = moved.card().preprocessing.clone();
    let rois = Roi::extract_many(&ph.slice, &corners, &p).unwrap();
    let preds = moved.classify(&rois).unwrap();
    assert_eq!(
        preds.len(),
        corners.len(),
        "one prediction per disc, not per copy"
    );
    let features = moved.features(&rois).unwrap();
    assert_eq!(features.len(), corners.len());
    let mut largest_change = 0.0f32;
    for ((roi, pred), feat) in rois.iter().zip(&preds).zip(&features) {
        // Each view alone, through the model without the copies (its mirror average included).
        let views: Vec<Roi> = std::iter::once(roi.pixels.clone())
            .chain(roi.moved.iter().cloned())
            .map(|pixels| Roi {
                size: roi.size,
                pixels,
                moved: Vec::new(),
            })
            .collect();
        let each = plain.classify(&views).unwrap();
        let mean: [f32; 4] =
            std::array::from_fn(|k| each.iter().map(|e| e.logits[k]).sum::<f32>() / 5.0);
        for (k, (got, want)) in pred.logits.iter().zip(&mean).enumerate() {
            assert!(
                (got - want).abs() < 1e-4,
                "logit {k}: {got} against the mean of the views {want}"
            );
        }
        let calibrated = plain.predict(mean);
        assert!((calibrated.probabilities[0] - pred.probabilities[0]).abs() < 1e-5);
        let own = plain.features(&views[..1]).unwrap();
        let each_f = plain.features(&views).unwrap();
        for j in [0, 100, 511] {
            let m = each_f.iter().map(|f| f[j]).sum::<f32>() / 5.0;
            assert!((feat[j] - m).abs() < 1e-4 * (1.0 + m.abs()));
        }
        assert_eq!(own.len(), 1);
        largest_change =
            largest_change.max((pred.probabilities[0] - each[0].probabilities[0]).abs());
    }
    // The copies move a phantom's calls, but not far: they are the same disc.
    assert!(
        largest_change > 1e-4 && largest_change < 0.3,
        "{largest_change}"
    );

    // The occlusion map explains the own ROI: the same map with or without the copies.
    let with = endplate::model::evidence::occlusion_with(&moved, &rois[0], 32, 32).unwrap();
    let own = Roi {
        moved: Vec::new(),
        ..rois[0].clone()
    };
    let without = endplate::model::evidence::occlusion_with(&plain, &own, 32, 32).unwrap();
    assert_eq!(with.class, without.class);
    assert!((with.probability - without.probability).abs() < 1e-6);
    assert_eq!(with.runs, without.runs);
}

#[test]
fn input_of_the_wrong_number_of_views_is_refused_with_a_message() {
    let moved = bundled();
    let one_view = vec![0.0f32; 3 * 128 * 128];
    let e = moved.classify_input(one_view).unwrap_err().to_string();
    assert!(e.contains("5 x 3 x 128 x 128"), "{e}");
}
