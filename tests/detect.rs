//! The disc detector: its file and card, what it does with slices it cannot read a spine from,
//! the phantoms' detector truth, and the `train-detector` / `detect` / `evaluate-detector`
//! commands end to end (a one-epoch run, then a resume).

mod common;
use common::{endplate, synth};

use endplate::model::card::Training;
use endplate::model::detector::{write_detector, Detector, DetectorCard};
use endplate::model::detector_net::DetectorArch;
use endplate::model::file::BatchNorm;
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::Classifier;
use std::path::PathBuf;

fn random_detector(seed: u64, bn: BatchNorm) -> Vec<u8> {
    let arch = DetectorArch::default();
    let card = DetectorCard::new("test", Training::default());
    write_detector(&arch, &arch.random_weights(seed), &card, bn).unwrap()
}

fn bundled_detector() -> Option<Detector> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/endplate-detector.onnx");
    let bytes = std::fs::read(&p).ok()?;
    Some(Detector::from_bytes("bundled", &bytes).unwrap())
}

/// The bundled detector and the real slices of one of `data/spider`'s manifests with their true
/// discs, or `None` (saying why) where either is absent.
fn bundled_detector_and_real_truth(
    manifest: &str,
) -> Option<(
    Detector,
    Vec<(endplate::eval::detection::SliceTruth, endplate::Slice)>,
)> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/spider")
        .join(manifest);
    let Some(det) = bundled_detector() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return None;
    };
    if !manifest
        .parent()
        .unwrap()
        .join("../../../shared/data/spider-t2")
        .is_dir()
    {
        eprintln!("skipped: ../shared/data/spider-t2 (the real slices) is absent");
        return None;
    }
    let truth = endplate::eval::detection::read_truth(&manifest, |_| ()).unwrap();
    Some((det, truth))
}

#[test]
fn detector_and_classifier_files_refuse_each_others_role() {
    let det = random_detector(3, BatchNorm::Fold);
    let e = Classifier::from_bytes("det.onnx", &det)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("det.onnx") && e.contains("detector") && e.contains("not a classifier"),
        "{e}"
    );
    let (cls, _) = common::random_model(3, BatchNorm::Fold);
    let e = Detector::from_bytes("cls.onnx", &cls)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cls.onnx") && e.contains("not a disc detector"),
        "{e}"
    );
    // The same weights with BatchNorm kept (checkpoints) or folded (shipped) give the same maps.
    let keep = Detector::from_bytes("keep", &random_detector(3, BatchNorm::Keep)).unwrap();
    let fold = Detector::from_bytes("fold", &det).unwrap();
    let input: Vec<f32> = (0..256 * 256)
        .map(|k| ((k * 7919) % 255) as f32 / 255.0)
        .collect();
    let (a, b) = (keep.maps(input.clone()).unwrap(), fold.maps(input).unwrap());
    assert_eq!(a.len(), 16 * 64 * 64, "ten maps and six corner maps");
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "folded BatchNorm moved a map value by {diff}");
}

#[test]
fn detectors_from_before_corner_maps_still_load_and_widen_without_changing_their_maps() {
    // A detector file from before corner maps: ten maps, and a card without `corner_maps`.
    let old = DetectorArch::with_corner_maps(false);
    let mut card = DetectorCard::new("old", Training::default());
    card.decode.corner_maps = false;
    let weights = old.random_weights(4);
    let bytes = write_detector(&old, &weights, &card, BatchNorm::Keep).unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&card).unwrap();
    json["decode"]
        .as_object_mut()
        .unwrap()
        .remove("corner_maps");
    let read = DetectorCard::from_json("old", &json.to_string()).unwrap();
    assert!(
        !read.decode.corner_maps,
        "an old card reads as without corner maps"
    );
    let det = Detector::from_bytes("old.onnx", &bytes).unwrap();
    let input: Vec<f32> = (0..256 * 256)
        .map(|k| ((k * 31) % 251) as f32 / 251.0)
        .collect();
    let before = det.maps(input.clone()).unwrap();
    assert_eq!(before.len(), 10 * 64 * 64);

    // Its card and its network must agree.
    let e = write_detector(
        &DetectorArch::default(),
        &DetectorArch::default().random_weights(4),
        &card,
        BatchNorm::Keep,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("corner_maps = false") && e.contains("16 output maps"),
        "{e}"
    );

    // Widened for training with corner maps: the ten maps it had are the same values.
    let new = DetectorArch::default();
    let mut wide = weights.clone();
    assert!(new.widen(&mut wide, 9), "ten maps widened to sixteen");
    assert!(!new.widen(&mut wide, 9), "weights that fit are left alone");
    new.check(&wide).unwrap();
    let bytes = write_detector(
        &new,
        &wide,
        &DetectorCard::new("new", Training::default()),
        BatchNorm::Keep,
    )
    .unwrap();
    let after = Detector::from_bytes("new.onnx", &bytes)
        .unwrap()
        .maps(input)
        .unwrap();
    assert_eq!(after.len(), 16 * 64 * 64);
    assert_eq!(&after[..10 * 64 * 64], &before[..]);
}

#[test]
fn phantom_detector_truth_counts_up_from_the_sacrum_and_matches_the_lumbar_truth() {
    let ph = render(&plan_subject(5, 0, ClassMix::Paper, 8));
    // T10T11 .. L5S1: eight discs, numbered 7 .. 0 from the top.
    let k: Vec<usize> = ph.spine_discs.iter().map(|d| d.0).collect();
    assert_eq!(k, [7, 6, 5, 4, 3, 2, 1, 0]);
    for d in &ph.discs {
        let (_, corners) = ph
            .spine_discs
            .iter()
            .find(|s| s.0 == 4 - d.level.index())
            .unwrap();
        assert_eq!(*corners, d.corners, "{:?}", d.level);
    }
}

#[test]
fn slices_without_a_spine_give_no_discs_and_never_panic() {
    let Some(det) = bundled_detector() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    let blank = common::slice_from_fn(256, 256, |_, _| 0.0);
    let tiny = common::slice_from_fn(40, 40, |x, y| (x * y) % 17.0);
    let noise = common::slice_from_fn(300, 300, |x, y| {
        ((x * 12.9898 + y * 78.233).sin() * 43758.5453)
            .fract()
            .abs()
            * 1000.0
    });
    // An axial-like slice: a bright ring in a dark field.
    let axial = common::slice_from_fn(320, 320, |x, y| {
        let r = ((x - 160.0).powi(2) + (y - 160.0).powi(2)).sqrt();
        if (90.0..110.0).contains(&r) {
            900.0
        } else if r < 40.0 {
            400.0
        } else {
            50.0
        }
    });
    for (name, s) in [
        ("blank", blank),
        ("40 px", tiny),
        ("noise", noise),
        ("axial-like", axial),
    ] {
        let discs = det.detect(&s).unwrap();
        let lumbar = discs.iter().filter(|d| d.lumbar_level().is_some()).count();
        assert!(
            lumbar <= 1,
            "{name}: {} lumbar discs invented: {discs:?}",
            lumbar
        );
    }
}

#[test]
fn bundled_detector_finds_the_discs_of_a_fresh_phantom() {
    let Some(det) = bundled_detector() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    let (mut right, mut total, mut errors) = (0, 0, Vec::new());
    for i in 0..6 {
        let ph = render(&plan_subject(4242, i, ClassMix::Paper, 16));
        let found = det.detect(&ph.slice).unwrap();
        for d in &ph.discs {
            total += 1;
            if let Some(f) = found.iter().find(|f| f.lumbar_level() == Some(d.level)) {
                let c = f.center();
                let t = d
                    .corners
                    .iter()
                    .fold((0.0, 0.0), |a, p| (a.0 + p.x / 4.0, a.1 + p.y / 4.0));
                let e = (c.x - t.0).hypot(c.y - t.1) * ph.plan.spacing_mm;
                if e < 5.0 {
                    right += 1;
                    errors.push(e);
                }
            }
        }
    }
    eprintln!("{right} of {total} phantom discs found at their level");
    // A floor under today's bundled detector (25 of these 30 at the right level when it was
    // bundled, 20 for the one before; the goal is 95 %): it catches a detector that got worse.
    assert!(
        right as f64 >= 0.75 * total as f64,
        "{right} of {total} phantom discs found at their level"
    );
}

/// The bundled detector with its card's `decode.corner_views` set to `on`.
fn bundled_detector_with_corner_views(on: bool) -> Option<Detector> {
    use endplate::model::file::{card_json, encode_with_card, parse_proto};
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/endplate-detector.onnx");
    let proto = parse_proto("bundled", &std::fs::read(&p).ok()?).unwrap();
    let mut card: serde_json::Value =
        serde_json::from_str(&card_json("bundled", &proto).unwrap()).unwrap();
    card["decode"]["corner_views"] = serde_json::json!(on);
    let bytes = encode_with_card("bundled", proto, &card).unwrap();
    Some(Detector::from_bytes("bundled", &bytes).unwrap())
}

#[test]
fn corner_views_place_phantom_corners_closer_and_leave_levels_alone() {
    let (Some(with), Some(without)) = (
        bundled_detector_with_corner_views(true),
        bundled_detector_with_corner_views(false),
    ) else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    let (mut errors, mut levels) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for i in 0..6 {
        let ph = render(&plan_subject(5151, i, ClassMix::Paper, 16));
        for (k, det) in [&with, &without].into_iter().enumerate() {
            let found = det.detect(&ph.slice).unwrap();
            levels[k].push(found.iter().map(|f| f.level.clone()).collect::<Vec<_>>());
            for d in &ph.discs {
                let Some(f) = found.iter().find(|f| f.lumbar_level() == Some(d.level)) else {
                    continue;
                };
                let truth = endplate::disc::detection::spec_order(d.corners);
                for (a, b) in f.corners.iter().zip(truth) {
                    errors[k].push(a.distance(b));
                }
            }
        }
    }
    // The views move corners only: every disc keeps its level, none comes or goes.
    assert_eq!(levels[0], levels[1]);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (m_with, m_without) = (median(&mut errors[0]), median(&mut errors[1]));
    eprintln!(
        "corner median {m_with:.2} px with corner views, {m_without:.2} px without ({} corners)",
        errors[0].len()
    );
    // On 100 fresh phantoms: 1.39 against 1.74 px.
    assert_eq!(errors[0].len(), errors[1].len());
    assert!(
        m_with < m_without,
        "{m_with:.2} px with, {m_without:.2} px without"
    );
}

#[test]
fn detect_tells_when_the_dicom_says_the_slice_is_mirrored() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, o: [f64; 6]| {
        let path = dir.path().join(name);
        std::fs::write(&path, common::dicom::oriented(o)).unwrap();
        let out = endplate(&["detect", "--image", path.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (json, stderr) = run("mirrored.dcm", [0.0, -1.0, 0.0, 0.0, 0.0, -1.0]);
    let w = json["warning"].as_str().unwrap();
    assert!(w.contains("anterior is on the right"), "{w}");
    assert!(
        stderr.contains("note: ") && stderr.contains("mirror it"),
        "{stderr}"
    );
    let (json, stderr) = run("upright.dcm", [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]);
    assert!(json.get("warning").is_none(), "{json}");
    assert!(!stderr.contains("note: "), "{stderr}");
}

#[test]
fn bundled_detector_on_the_real_test_patients() {
    // The 12 patients the detector never learnt from nor chose an epoch by.
    let Some((det, truth)) = bundled_detector_and_real_truth("corners-heldout.csv") else {
        return;
    };
    let r = endplate::eval::detection::evaluate(&det, &truth).unwrap();
    let median = r.overall.corner_median_mm.unwrap();
    eprintln!(
        "{} of {} at their level, {} false, corner median {median:.2} mm",
        r.overall.right_level, r.overall.discs, r.false_discs
    );
    // Floors under the bundled detector's figures (50 of 60, 2 false, 1.85 mm with its corner
    // views; 45, 3 and 2.15 mm without): they catch a detector that got worse on real spines,
    // not one short of the goals (95 %, 1.5 mm).
    assert_eq!(r.overall.discs, 60);
    assert!(
        r.overall.right_level >= 47,
        "{} right",
        r.overall.right_level
    );
    assert!(r.false_discs <= 4, "{} false discs", r.false_discs);
    assert!(median <= 3.0, "corner median {median:.2} mm");
}

#[test]
fn tall_real_slices_whose_discs_lie_far_apart_get_their_levels() {
    let Some((det, truth)) = bundled_detector_and_real_truth("manifest.csv") else {
        return;
    };
    // Slices where the level chain stopped at L5S1 while it reached only 1.4 disc widths per
    // step: their steps are up to 2.4 widths, and spider_15's L5S1 leans 38°
    // (docs/detection-experiments.md, "The chain's reach follows the slice"). Then 15 of their
    // 40 discs were at their level; now 39 (spider_99's L1L2 is still missed).
    let tall = [
        "spider_15",
        "spider_38",
        "spider_99",
        "spider_109",
        "spider_181",
        "spider_184",
        "spider_187",
        "spider_197",
    ];
    let truth: Vec<_> = truth
        .into_iter()
        .filter(|(t, _)| tall.contains(&t.subject.as_str()))
        .collect();
    let r = endplate::eval::detection::evaluate(&det, &truth).unwrap();
    eprintln!(
        "{} of {} at their level, {} at a wrong one, {} false",
        r.overall.right_level, r.overall.discs, r.overall.wrong_level, r.false_discs
    );
    assert_eq!(r.overall.discs, 40);
    assert!(
        r.overall.right_level >= 38,
        "{} right",
        r.overall.right_level
    );
    assert_eq!(r.overall.wrong_level, 0);
    assert_eq!(r.false_discs, 0);
}

#[test]
fn train_detector_one_epoch_resume_detect_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("det.onnx");
    let ck = dir.path().join("ck");
    let common_args = |epochs: &'static str| {
        vec![
            "train-detector".to_string(),
            "--out".into(),
            out.display().to_string(),
            "--phantoms".into(),
            "3".into(),
            "--validate-phantoms".into(),
            "2".into(),
            "--views".into(),
            "6".into(),
            "--batch".into(),
            "3".into(),
            "--epochs".into(),
            epochs.into(),
            "--checkpoints".into(),
            ck.display().to_string(),
        ]
    };
    let a = common_args("1");
    let o = endplate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(ck.join("detector-checkpoint.json").is_file());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("detector-checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(state["next_epoch"], 1);
    let mut a = common_args("2");
    a.push("--resume".into());
    let o = endplate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("epoch 2") && !err.contains("epoch 1:"),
        "resume starts at epoch 2: {err}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let det = Detector::from_bytes("det", &bytes).unwrap();
    assert_eq!(det.card().kind, "detector");
    assert_eq!(det.card().training.epochs, Some(2));

    // detect on a phantom slice written as PNG: valid JSON with the SPEC's fields, whatever an
    // untrained detector finds; evaluate-detector on the synth manifest reports every level.
    let ph = dir.path().join("ph");
    let (manifest, text) = synth(&ph, 2, 3);
    let image = ph.join(text.lines().nth(1).unwrap().split(',').next().unwrap());
    let o = endplate(&[
        "detect",
        "--image",
        image.to_str().unwrap(),
        "--detector",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["model"]["kind"], "detector");
    assert!(j["discs"].is_array());
    let o = endplate(&[
        "evaluate-detector",
        "--manifest",
        manifest.to_str().unwrap(),
        "--detector",
        out.to_str().unwrap(),
        "--json",
        "--overlays",
        dir.path().join("overlays").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["overall"]["discs"], 10);
    assert_eq!(r["levels"].as_array().unwrap().len(), 5);
    assert_eq!(r["intervals"]["subjects"], 2);
    // One overlay per slice, as large as the slice.
    let pngs: Vec<_> = std::fs::read_dir(dir.path().join("overlays"))
        .unwrap()
        .collect();
    assert_eq!(pngs.len(), 2);
    let first = image::open(pngs[0].as_ref().unwrap().path()).unwrap();
    assert!(first.width() >= 256 && first.height() >= 256);
    // A classifier given as the detector is refused with a message and exit status 2.
    let o = endplate(&[
        "detect",
        "--image",
        image.to_str().unwrap(),
        "--detector",
        "models/endplate-default.onnx",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a disc detector"));
}

#[test]
fn train_detector_never_learns_a_validation_patient_and_continues_from_an_exported_detector() {
    let dir = tempfile::tempdir().unwrap();
    let ph = dir.path().join("ph");
    let (manifest, text) = synth(&ph, 3, 4);
    // The validation manifest holds one of the three patients of the training manifest.
    let first_subject = text.lines().nth(1).unwrap().split(',').nth(1).unwrap();
    let validate = ph.join("validate.csv");
    let rows: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(k, l)| *k == 0 || l.split(',').nth(1) == Some(first_subject))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&validate, rows.join("\n") + "\n").unwrap();
    let out = dir.path().join("det.onnx");
    // One epoch of two views on the manifest's real slices, no phantoms.
    let train = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "train-detector",
            "--out",
            out.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--phantoms",
            "0",
            "--validate-phantoms",
            "0",
            "--views",
            "2",
            "--batch",
            "2",
            "--epochs",
            "1",
        ];
        args.extend_from_slice(extra);
        endplate(&args)
    };
    let o = train(&out, &["--validate", validate.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("1 slices left out, their patients are in --validate"),
        "{err}"
    );
    let det = Detector::from_bytes("det", &std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(det.card().training.details["real_training_slices"], 2);

    // An exported (folded) detector trains on: its BatchNorms are unfolded and measured.
    let o = train(
        &dir.path().join("again.onnx"),
        &["--init", out.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("an exported detector; its BatchNorms unfolded"),
        "{err}"
    );
    let again = Detector::from_bytes(
        "again",
        &std::fs::read(dir.path().join("again.onnx")).unwrap(),
    )
    .unwrap();
    assert_eq!(again.card().training.init, out.display().to_string());

    // With nothing to learn from, the exported file is not measured: the run says what to give.
    let o = endplate(&[
        "train-detector",
        "--out",
        dir.path().join("empty.onnx").to_str().unwrap(),
        "--init",
        out.to_str().unwrap(),
        "--phantoms",
        "0",
        "--validate-phantoms",
        "0",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("give --phantoms N (N > 0) or --manifest") && !err.contains("measured on"),
        "{err}"
    );

    // A classifier is no detector to start from: refused before any work, naming the fix.
    let o = endplate(&[
        "train-detector",
        "--out",
        dir.path().join("wrong.onnx").to_str().unwrap(),
        "--init",
        "models/endplate-default.onnx",
        "--manifest",
        manifest.to_str().unwrap(),
        "--phantoms",
        "0",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("rendering"), "refused before any work: {err}");
    assert!(
        err.contains("endplate-default.onnx") && err.contains("detector-last.onnx"),
        "{err}"
    );
}

#[test]
fn an_exported_detector_unfolds_to_the_same_maps_with_measured_statistics() {
    use endplate::train::detector::{restat_for_training, unfold_detector};
    use endplate::train::detector_data::phantom_samples;
    let arch = DetectorArch::default();
    // BatchNorms with statistics far from the identity, as a trained detector's are.
    let mut w = arch.random_weights(5);
    for (name, t) in w.iter_mut() {
        for (k, v) in t.data.iter_mut().enumerate() {
            let r = ((k * 7 + name.len() * 13) % 17) as f32 / 17.0;
            if name.ends_with("running_mean") || name.ends_with(".bn.bias") {
                *v = r - 0.5;
            } else if name.ends_with("running_var") || name.ends_with(".bn.weight") {
                *v = 0.5 + r;
            }
        }
    }
    let card = DetectorCard::new("test", Training::default());
    let maps = |w: &endplate::model::resnet::Weights| {
        let bytes = write_detector(&arch, w, &card, BatchNorm::Keep).unwrap();
        let input: Vec<f32> = (0..256 * 256)
            .map(|k| ((k * 7919) % 255) as f32 / 255.0)
            .collect();
        Detector::from_bytes("d", &bytes)
            .unwrap()
            .maps(input)
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let folded_path = dir.path().join("folded.onnx");
    std::fs::write(
        &folded_path,
        write_detector(&arch, &w, &card, BatchNorm::Fold).unwrap(),
    )
    .unwrap();
    let folded = endplate::model::file::read_weights(&folded_path).unwrap();
    assert!(
        !folded.keys().any(|k| k.contains(".bn.")),
        "the file is folded"
    );
    let unfolded = unfold_detector(&folded, &arch).expect("a folded detector");
    let input = endplate::model::detector::DetectorInput::default();
    let phantoms = phantom_samples(2, 7, &input, 1);
    let trained_on = restat_for_training(&unfolded, &arch, &phantoms, &[], &input, 1).unwrap();
    let before = maps(&w);
    for got in [maps(&unfolded), maps(&trained_on)] {
        let diff = before
            .iter()
            .zip(&got)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 2e-3, "unfolding moved a map value by {diff}");
    }
    // The statistics are measured, not the unfolded placeholders (mean 0, variance 1).
    let var = &trained_on["enc0.bn.running_var"].data;
    assert!(var.iter().all(|v| (v - 1.0).abs() > 1e-3), "{var:?}");
    // A classifier's weights are not a detector's.
    let (cls, _) = common::random_model(3, BatchNorm::Fold);
    let cls_path = dir.path().join("cls.onnx");
    std::fs::write(&cls_path, cls).unwrap();
    let cls = endplate::model::file::read_weights(&cls_path).unwrap();
    assert!(unfold_detector(&cls, &arch).is_none());
}

#[test]
fn manifest_rows_without_corners_are_detected_in_order() {
    let Some(sample) = common::spider_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let slice = sample.join("spider_20_t2.png");
    let other = sample.join("spider_40_t2.png");
    let manifest = dir.path().join("m.csv");
    std::fs::write(
        &manifest,
        format!(
            "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\n\
             {s},p20,L3L4,lesion,,,,,,,,\n\
             {o},p40,,,163,331,220,331,163,350,220,350\n\
             {s},p20,,,,,,,,,,\n",
            s = slice.display(),
            o = other.display()
        ),
    )
    .unwrap();
    let o = endplate(&[
        "classify",
        "--manifest",
        manifest.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let results = r["results"].as_array().unwrap();
    let levels: Vec<&str> = results
        .iter()
        .map(|d| d["level"].as_str().unwrap_or(""))
        .collect();
    // In manifest order: the detected L3L4, the hand-placed disc, then every lumbar disc.
    assert_eq!(levels, ["L3L4", "", "L1L2", "L2L3", "L3L4", "L4L5", "L5S1"]);
    assert_eq!(results[0]["truth"], "lesion");
    assert_eq!(results[0]["corners"], results[4]["corners"]);
    assert_eq!(results[1]["corners"][0], serde_json::json!([163.0, 331.0]));
    // The same discs as `classify --image` without corners.
    let o = endplate(&["classify", "--image", slice.to_str().unwrap(), "--json"]);
    let direct: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        direct["results"][2]["probabilities"],
        results[4]["probabilities"]
    );
    // A level the detector does not report is left out with a message, not an error.
    std::fs::write(
        &manifest,
        format!(
            "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\n{},p,L1L2,,,,,,,,,\n",
            dir.path().join("blank.png").display()
        ),
    )
    .unwrap();
    image::GrayImage::new(300, 300)
        .save(dir.path().join("blank.png"))
        .unwrap();
    let o = endplate(&[
        "classify",
        "--manifest",
        manifest.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("row 2: no L1L2 disc detected"), "{err}");
}

/// The real slices, beside the repository, or `None` (with a message) where they are absent.
fn spider_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/spider-t2");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/data/spider-t2 (the real slices) is absent");
        None
    }
}

#[test]
fn a_slice_stored_upside_down_is_detected_upright_and_reported_as_stored() {
    let Some(det) = bundled_detector() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    assert!(
        det.has_orientation(),
        "the bundled detector has no orientation output"
    );
    let ph = render(&plan_subject(4243, 0, ClassMix::Paper, 16));
    let upright = det.detect_oriented(&ph.slice).unwrap();
    assert!(!upright.upside_down);
    assert!(upright
        .discs
        .iter()
        .any(|d| d.level.as_deref() == Some("L5S1")));
    // The same phantom stored upside down: found turned upright, so exactly the upright
    // slice's discs, given on the slice as stored (top to bottom, SPEC order).
    let stored = ph.slice.flipped_vertically();
    let turned = det.detect_oriented(&stored).unwrap();
    assert!(turned.upside_down);
    let h = ph.slice.height as f64;
    let mut expected: Vec<_> = upright
        .discs
        .iter()
        .map(|d| d.flipped_vertically(ph.slice.height))
        .collect();
    expected.reverse();
    assert_eq!(turned.discs, expected);
    let ys: Vec<f64> = turned.discs.iter().map(|d| d.center().y).collect();
    assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
    // L5S1 is now the disc highest in the image, its upper endplate corners first.
    assert_eq!(turned.discs[0].level.as_deref(), Some("L5S1"));
    let c = turned.discs[0].corners;
    assert!(c[0].y + c[1].y <= c[2].y + c[3].y && c[0].x <= c[1].x);
    assert!(turned
        .discs
        .iter()
        .all(|d| d.corners.iter().all(|p| p.y > 0.0 && p.y < h)));
}

#[test]
fn real_slices_stored_upside_down_get_their_levels_from_the_right_end() {
    let (Some(det), Some(_)) = (bundled_detector(), spider_dir()) else {
        return;
    };
    // The five SPIDER slices stored upside down: never learnt by the orientation layer (nor by
    // the detector). Before it, 3 of their 25 discs were found at their level and 9 were false.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/spider/upside-down.csv");
    let truth = endplate::eval::detection::read_truth(&manifest, |_| ()).unwrap();
    assert_eq!(truth.len(), 5);
    for (t, slice) in &truth {
        assert!(
            det.detect_oriented(slice).unwrap().upside_down,
            "{}",
            t.image
        );
    }
    let r = endplate::eval::detection::evaluate(&det, &truth).unwrap();
    assert_eq!(r.overall.discs, 25);
    assert!(
        r.overall.right_level >= 23,
        "{} right",
        r.overall.right_level
    );
    assert!(r.false_discs <= 1, "{} false discs", r.false_discs);
}

#[test]
fn detectors_without_an_orientation_output_never_turn_a_slice() {
    let det = Detector::from_bytes("random.onnx", &random_detector(5, BatchNorm::Fold)).unwrap();
    assert!(!det.has_orientation());
    let ph = render(&plan_subject(4244, 0, ClassMix::Paper, 16));
    let stored = ph.slice.flipped_vertically();
    let found = det.detect_oriented(&stored).unwrap();
    assert!(!found.upside_down);
    assert_eq!(found.discs, det.detect(&stored).unwrap());
}

#[test]
fn fit_orientation_writes_a_detector_that_reads_which_way_up_and_records_how() {
    let Some(_) = bundled_detector() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Phantoms only (no real slices needed): a manifest of 6 and 4 more rendered by the command.
    let (synthetic, text) = synth(&dir.path().join("ph"), 6, 31);
    // Only the images are learnt: a list of them without levels or corners will do.
    let manifest = dir.path().join("ph/images-only.csv");
    let mut rows = vec!["image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4".to_string()];
    rows.extend(
        text.lines()
            .skip(1)
            .map(|l| format!("{},x,,,,,,,,,,", l.split(',').next().unwrap())),
    );
    std::fs::write(&manifest, rows.join("\n")).unwrap();
    assert!(synthetic.exists());
    let out = dir.path().join("det.onnx");
    let o = endplate(&[
        "fit-orientation",
        "--manifest",
        manifest.to_str().unwrap(),
        "--phantoms",
        "4",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("learnt: 20 of 20 views read the right way up"),
        "{err}"
    );
    let det = Detector::from_bytes("det.onnx", &std::fs::read(&out).unwrap()).unwrap();
    assert!(det.has_orientation());
    let record = &det.card().orientation;
    assert_eq!(record["checks"]["learnt"]["slices"], 10);
    assert!(
        record["fitted_on"].as_str().unwrap().contains("6 slices"),
        "{record}"
    );
    // A manifest of nothing is refused with the fix, and nothing is written.
    let empty = dir.path().join("empty.csv");
    std::fs::write(
        &empty,
        "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\n",
    )
    .unwrap();
    let none = dir.path().join("none.onnx");
    let o = endplate(&[
        "fit-orientation",
        "--manifest",
        empty.to_str().unwrap(),
        "--phantoms",
        "0",
        "--out",
        none.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("stored upright"),
        "{err}"
    );
    assert!(!none.exists());
}

#[test]
fn classify_turns_a_slice_stored_upside_down_before_cutting_its_regions() {
    let (Some(_), Some(dir)) = (bundled_detector(), spider_dir()) else {
        return;
    };
    // spider_35 (SPACE) is stored upside down; the same pixels turned upright, written here,
    // are an ordinary upright slice. Each disc must get the same probabilities from both: the
    // stored one is detected and classified turned upright, on exactly those pixels.
    let stored = dir.join("spider_35_t2_SPACE.png");
    let tmp = tempfile::tempdir().unwrap();
    let upright = tmp.path().join("upright.png");
    let gray = image::open(&stored).unwrap().to_luma8();
    image::imageops::flip_vertical(&gray)
        .save(&upright)
        .unwrap();
    let classify = |how: &str, p: &std::path::Path| -> (Vec<(String, Vec<f64>)>, String) {
        let o = endplate(&["classify", how, p.to_str().unwrap(), "--json"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let rows = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let p = r["probabilities"].as_object().unwrap();
                (
                    r["level"].as_str().unwrap().to_string(),
                    p.values().map(|x| x.as_f64().unwrap()).collect(),
                )
            })
            .collect();
        (rows, err)
    };
    let (a, err_a) = classify("--image", &stored);
    let (b, err_b) = classify("--image", &upright);
    // A manifest row without corners is detected the same way, its ROIs turned too.
    let manifest = tmp.path().join("rows.csv");
    std::fs::write(
        &manifest,
        format!(
            "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\n{},spider_35,,,,,,,,,,\n",
            stored.display()
        ),
    )
    .unwrap();
    let (c, _) = classify("--manifest", &manifest);
    assert_eq!(c, a);
    assert!(err_a.contains("stored upside down"), "{err_a}");
    assert!(!err_b.contains("upside down"), "{err_b}");
    let levels = |r: &[(String, Vec<f64>)]| {
        let mut l: Vec<String> = r.iter().map(|x| x.0.clone()).collect();
        l.sort();
        l
    };
    assert_eq!(levels(&a), ["L1L2", "L2L3", "L3L4", "L4L5", "L5S1"]);
    assert_eq!(levels(&a), levels(&b));
    for (level, p) in &a {
        let q = &b.iter().find(|x| &x.0 == level).unwrap().1;
        for (x, y) in p.iter().zip(q) {
            assert!((x - y).abs() < 1e-6, "{level}: {p:?} against {q:?}");
        }
    }
}

/// The bundled file's own network alone (any joined corner network cut off), as file bytes.
fn bundled_own_network() -> Option<(Vec<u8>, serde_json::Value)> {
    use endplate::model::file::{card_json, encode_with_card, parse_proto};
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/endplate-detector.onnx");
    let proto = parse_proto("bundled", &std::fs::read(&p).ok()?).unwrap();
    let (own, _) = endplate::model::detector::split_corner_network(proto);
    let card: serde_json::Value =
        serde_json::from_str(&card_json("bundled", &own).unwrap()).unwrap();
    Some((encode_with_card("bundled", own, &card).unwrap(), card))
}

#[test]
fn a_joined_corner_network_moves_only_the_corners_of_the_closer_views() {
    use endplate::model::corner_network::join;
    use endplate::model::file::{card_json, encode_with_card, parse_proto};
    let Some((own, card)) = bundled_own_network() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    let alone = Detector::from_bytes("own", &own).unwrap();
    assert!(!alone.has_corner_network());

    // The same network joined to itself: every disc, level and corner exactly as alone, so the
    // joined copy's nodes and weights were renamed and cut apart again without a slip.
    let twin = Detector::from_bytes("twin", &join("own", &own, "own", &own).unwrap()).unwrap();
    assert!(twin.has_corner_network());
    // Another corner network: the same with every corner's in-cell offset moved by half a cell
    // (the bias of the last four maps), so corner views place corners two input pixels away.
    let mut shifted = parse_proto("own", &own).unwrap();
    let bias = shifted
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "out.bias")
        .unwrap();
    for k in 12..16 {
        let b = &mut bias.raw_data[4 * k..4 * k + 4];
        let v = f32::from_le_bytes(b.try_into().unwrap()) + 0.5;
        b.copy_from_slice(&v.to_le_bytes());
    }
    let shifted = encode_with_card("shifted", shifted, &card).unwrap();
    let joined = join("own", &own, "shifted", &shifted).unwrap();
    let moved = Detector::from_bytes("joined", &joined).unwrap();
    // The card says where the corner network came from.
    let joined_card: serde_json::Value = serde_json::from_str(
        &card_json("joined", &parse_proto("joined", &joined).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(joined_card["corner_network"]["name"], card["name"]);

    let mut shifts = Vec::new();
    for i in 0..4 {
        let ph = render(&plan_subject(5252, i, ClassMix::Paper, 16));
        let a = alone.detect(&ph.slice).unwrap();
        assert_eq!(a, twin.detect(&ph.slice).unwrap());
        let m = moved.detect(&ph.slice).unwrap();
        // Levels and discs from the file's own network: the same discs in the same order.
        let levels = |d: &[endplate::disc::detection::DetectedDisc]| {
            d.iter().map(|x| x.level.clone()).collect::<Vec<_>>()
        };
        assert_eq!(levels(&a), levels(&m));
        for (x, y) in a.iter().zip(&m) {
            let shift = x
                .corners
                .iter()
                .zip(&y.corners)
                .map(|(p, q)| p.distance(*q))
                .fold(0.0, f64::max);
            if x.lumbar_level().is_some() {
                shifts.push(shift);
            } else {
                // Thoracic discs take no corner view.
                assert_eq!(shift, 0.0, "{:?}", x.level);
            }
        }
    }
    // Lumbar corners move, by about the shift the two half views average in, never wildly.
    assert!(!shifts.is_empty());
    assert!(shifts.iter().all(|&s| s > 0.05 && s < 6.0), "{shifts:?}");
}

#[test]
fn a_corner_network_must_read_the_same_input_and_write_the_same_maps() {
    use endplate::model::corner_network::join;
    let Some((own, _)) = bundled_own_network() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    // A detector of another input size.
    let arch = DetectorArch::default();
    let mut card = DetectorCard::new("small", Training::default());
    card.input.size = 128;
    let small = write_detector(&arch, &arch.random_weights(5), &card, BatchNorm::Fold).unwrap();
    let e = join("own.onnx", &own, "small.onnx", &small)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("small.onnx") && e.contains("same input") && e.contains("--init own.onnx"),
        "{e}"
    );
    // One of the same input and maps joins, even from random weights.
    let random = random_detector(5, BatchNorm::Fold);
    assert!(
        Detector::from_bytes("j", &join("own.onnx", &own, "r.onnx", &random).unwrap())
            .unwrap()
            .has_corner_network()
    );
    // A classifier is no detector at all.
    let (cls, _) = common::random_model(3, BatchNorm::Fold);
    let e = join("own.onnx", &own, "cls.onnx", &cls)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cls.onnx") && e.contains("not a disc detector"),
        "{e}"
    );
}

#[test]
fn join_corner_network_writes_a_file_that_detects_and_names_what_it_refuses() {
    let Some((own, _)) = bundled_own_network() else {
        eprintln!("skipped: models/endplate-detector.onnx is absent");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let own_path = dir.path().join("own.onnx");
    std::fs::write(&own_path, &own).unwrap();
    let join = |corners: &std::path::Path, out: &std::path::Path| {
        endplate(&[
            "join-corner-network",
            "--detector",
            own_path.to_str().unwrap(),
            "--corners",
            corners.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let out = dir.path().join("joined.onnx");
    let o = join(&own_path, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let joined = Detector::from_bytes("joined", &std::fs::read(&out).unwrap()).unwrap();
    assert!(joined.has_corner_network());

    // A classifier as the corner network: refused, nothing written.
    let (cls, _) = common::random_model(3, BatchNorm::Fold);
    let cls_path = dir.path().join("cls.onnx");
    std::fs::write(&cls_path, &cls).unwrap();
    let refused = dir.path().join("refused.onnx");
    let o = join(&cls_path, &refused);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cls.onnx") && err.contains("not a disc detector"),
        "{err}"
    );
    assert!(!refused.exists());
}
