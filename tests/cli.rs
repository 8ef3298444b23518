//! The `endplate` binary end to end: roi, classify (single disc, manifest, --json), and clear
//! errors with a non-zero exit status.

mod common;
use common::endplate;

use endplate::image::decode::{decode_file, DecodeOptions};
use endplate::model::file::BatchNorm;
use endplate::{Classifier, Point, Roi, RoiParams};
use std::path::Path;
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A 16-bit slice with two bright "discs" between darker "bodies".
fn write_slice(dir: &Path) -> std::path::PathBuf {
    let (w, h) = (160u32, 200u32);
    let data: Vec<u16> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let band = (y / 20) % 3 == 1 && (40..120).contains(&x);
            (if band { 3000 } else { 1200 }) + ((x * 7 + y * 13) % 200) as u16
        })
        .collect();
    let path = dir.join("slice.png");
    std::fs::write(&path, common::encode_png_gray16(w, h, &data)).unwrap();
    path
}

const CORNERS: &str = "40,20,120,20,40,40,120,40";

#[test]
fn classify_json_matches_the_library_and_roi_writes_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let slice = write_slice(dir.path());
    let (model_bytes, _) = common::random_model(9, BatchNorm::Fold);
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, &model_bytes).unwrap();
    let manifest = dir.path().join("manifest.csv");
    std::fs::write(
        &manifest,
        "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\n\
         slice.png,s1,L1L2,normal,40,20,120,20,40,40,120,40\n\
         slice.png,s1,L2L3,,40,80,120,82,41,100,120,101\n",
    )
    .unwrap();

    let out = endplate(&[
        "classify",
        "--manifest",
        manifest.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("discs/s"), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["level"], "L2L3");
    assert!(json["model"]["warning"]
        .as_str()
        .unwrap()
        .contains("Untrained"));

    // The same discs through the library.
    let lib = Classifier::from_bytes("m", &model_bytes).unwrap();
    let s = decode_file(&slice, DecodeOptions::default()).unwrap();
    let discs = [
        [
            Point::new(40., 20.),
            Point::new(120., 20.),
            Point::new(40., 40.),
            Point::new(120., 40.),
        ],
        [
            Point::new(40., 80.),
            Point::new(120., 82.),
            Point::new(41., 100.),
            Point::new(120., 101.),
        ],
    ];
    let rois = Roi::extract_many(&s, &discs, &RoiParams::default()).unwrap();
    let preds = lib.classify(&rois).unwrap();
    for (r, p) in results.iter().zip(&preds) {
        assert_eq!(r["label"], p.class.id());
        let probs = &r["probabilities"];
        let sum: f64 = ["normal", "wavy", "notched", "schmorl"]
            .iter()
            .map(|k| probs[k].as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-5);
        for k in 0..4 {
            assert!((r["logits"][k].as_f64().unwrap() - p.logits[k] as f64).abs() < 1e-4);
        }
    }

    // Single-disc table output.
    let out = endplate(&[
        "classify",
        "--image",
        slice.to_str().unwrap(),
        "--corners",
        CORNERS,
        "--model",
        model.to_str().unwrap(),
        "--level",
        "L1L2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("L1L2") && table.contains(preds[0].class.display_name()),
        "{table}"
    );

    // roi writes exactly the library's ROI.
    let png = dir.path().join("roi.png");
    let out = endplate(&[
        "roi",
        "--image",
        slice.to_str().unwrap(),
        "--corners",
        CORNERS,
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = image::open(&png).unwrap().into_luma8();
    assert_eq!(written.dimensions(), (128, 128));
    assert_eq!(written.into_raw(), rois[0].to_gray8());
}

#[test]
fn bad_input_exits_non_zero_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let slice = write_slice(dir.path());
    let (model_bytes, _) = common::random_model(9, BatchNorm::Fold);
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, &model_bytes).unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a network").unwrap();
    let bad_manifest = dir.path().join("bad.csv");
    std::fs::write(&bad_manifest, "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\nslice.png,s,L1L2,fracture,1,2,3,4,5,6,7,8\n").unwrap();
    let s = slice.to_str().unwrap();
    let m = model.to_str().unwrap();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "classify",
                "--image",
                "/nonexistent/x.png",
                "--corners",
                CORNERS,
                "--model",
                m,
            ],
            "/nonexistent/x.png",
        ),
        (
            vec!["classify", "--image", s, "--corners", "1,2,3", "--model", m],
            "eight numbers",
        ),
        (
            vec![
                "classify",
                "--image",
                s,
                "--corners",
                "40,20,999,20,40,40,120,40",
                "--model",
                m,
            ],
            "outside the 160x200 slice",
        ),
        (
            vec![
                "classify",
                "--image",
                s,
                "--corners",
                "10,10,20,10,30,10,40,10",
                "--model",
                m,
            ],
            "collinear",
        ),
        (
            vec![
                "classify",
                "--image",
                s,
                "--corners",
                CORNERS,
                "--model",
                junk.to_str().unwrap(),
            ],
            "not an ONNX",
        ),
        (
            vec![
                "classify",
                "--manifest",
                bad_manifest.to_str().unwrap(),
                "--model",
                m,
            ],
            "row 2, field `label`",
        ),
        (vec!["classify", "--model", m], "--manifest"),
    ];
    for (args, needle) in cases {
        let out = endplate(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: `{}` lacks `{needle}`",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

#[test]
fn synth_is_deterministic_and_evaluate_reports_table_3() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let o = endplate(&[
            "synth",
            "--out",
            out.to_str().unwrap(),
            "--subjects",
            "2",
            "--seed",
            "5",
            "--bits",
            "8",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("slices/s"), "{}", stderr(&o));
    }
    let manifest = std::fs::read_to_string(a.join("manifest.csv")).unwrap();
    assert_eq!(
        manifest,
        std::fs::read_to_string(b.join("manifest.csv")).unwrap()
    );
    assert_eq!(
        std::fs::read(a.join("images/ph00001.png")).unwrap(),
        std::fs::read(b.join("images/ph00001.png")).unwrap()
    );
    assert_eq!(manifest.lines().count(), 11);

    let (model_bytes, _) = common::random_model(4, BatchNorm::Fold);
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, &model_bytes).unwrap();
    let o = endplate(&[
        "evaluate",
        "--model",
        model.to_str().unwrap(),
        "--manifest",
        a.join("manifest.csv").to_str().unwrap(),
        "--json",
        "--bootstrap",
        "50",
        "--report",
        dir.path().join("report").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["n"], 10);
    for f in [
        "metrics.json",
        "confusion.csv",
        "confusion.svg",
        "roc.svg",
        "reliability.svg",
    ] {
        let text = std::fs::read_to_string(dir.path().join("report").join(f)).unwrap();
        assert!(text.len() > 20, "{f}");
    }
    for key in [
        "accuracy",
        "auc",
        "precision",
        "recall",
        "specificity",
        "f1",
    ] {
        let e = &m[key];
        let (lo, hi, point) = (
            e["lo"].as_f64().unwrap(),
            e["hi"].as_f64().unwrap(),
            e["point"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&point) && lo <= hi, "{key}: {e}");
    }
    let total: u64 = m["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10);
    assert!(m["per_class"]["schmorl"]["sensitivity"]["point"].is_number());
}

/// Twenty phantom discs of four subjects, all four classes, written by `endplate synth`.
#[cfg(feature = "train")]
fn four_phantom_subjects(out: &Path) {
    let o = endplate(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--subjects",
        "4",
        "--seed",
        "8",
        "--bits",
        "8",
        "--class-mix",
        "balanced",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `train`'s arguments for a two-fold cross-validation by subject of the manifest `data`, every
/// layer learning (the fold models go to the report folder beside `out`).
#[cfg(feature = "train")]
fn two_folds<'a>(data: &'a str, out: &'a str, epochs: &'a str, batch: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--manifest",
        data,
        "--out",
        out,
        "--epochs",
        epochs,
        "--batch",
        batch,
        "--unfreeze",
        "all",
        "--split-by",
        "subject",
        "--folds",
        "2",
        "--synthetic",
    ]
}

/// The bundled model learns from every real patient: `--no-validation-of` keeps a manifest's
/// discs out of the validation set, and `--calibrate-on-folds` fits the calibration on a
/// cross-validation's out-of-fold logits instead. Here manifest A stands for the real discs and
/// B for the phantoms that still watch the run.
#[cfg(feature = "train")]
#[test]
fn a_model_trained_on_every_disc_of_a_manifest_is_calibrated_on_the_folds_out_of_fold_logits() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    four_phantom_subjects(&a);
    let o = endplate(&[
        "synth",
        "--out",
        b.to_str().unwrap(),
        "--subjects",
        "4",
        "--seed",
        "9",
        "--bits",
        "8",
        "--class-mix",
        "balanced",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A's labels as real gradings give them: normal or lesion of unknown type.
    let text = std::fs::read_to_string(a.join("manifest.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let column = header.split(',').position(|c| c == "label").unwrap();
    let binary: Vec<String> = std::iter::once(header.to_string())
        .chain(lines.map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            if cells[column] != "normal" {
                cells[column] = "lesion";
            }
            cells.join(",")
        }))
        .collect();
    std::fs::write(a.join("binary.csv"), binary.join("\n") + "\n").unwrap();
    let (ma, mb) = (a.join("binary.csv"), b.join("manifest.csv"));
    let (ma, mb) = (ma.to_str().unwrap(), mb.to_str().unwrap());
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (cv, report, out) = (path("cv.onnx"), path("cv.report"), path("final.onnx"));
    let common = |out: &str| {
        vec![
            "train".to_string(),
            "--manifest".into(),
            ma.into(),
            "--manifest".into(),
            mb.into(),
            "--out".into(),
            out.into(),
            "--epochs".into(),
            "1".into(),
            "--batch".into(),
            "4".into(),
            "--unfreeze".into(),
            "all".into(),
            "--split-by".into(),
            "subject".into(),
            "--synthetic".into(),
        ]
    };
    let run = |args: Vec<String>| endplate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut args = common(&cv);
    args.extend(["--folds".into(), "2".into()]);
    let o = run(args);
    assert!(o.status.success(), "{}", stderr(&o));

    // Refusals, before any data are read, each naming the fix.
    let refused = |extra: &[&str], want: &str| {
        let mut args = common(&out);
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = run(args);
        let err = stderr(&o);
        assert!(
            !o.status.success() && err.contains(want),
            "{extra:?}: {err}"
        );
    };
    refused(&["--no-validation-of", "1"], "add --calibrate-on-folds DIR");
    refused(
        &["--no-validation-of", "3", "--calibrate-on-folds", &report],
        "there are 2 --manifest files",
    );
    refused(
        &["--calibrate-on-folds", &report, "--mirror-average"],
        "does not average each disc with its mirror image",
    );
    refused(
        &["--calibrate-on-folds", &report, "--folds", "2"],
        "leave out --folds",
    );
    refused(
        &["--calibrate-on-folds", &path("nowhere")],
        "no fold-1, fold-2",
    );

    let mut args = common(&out);
    args.extend(["--no-validation-of", "1", "--calibrate-on-folds", &report].map(String::from));
    let o = run(args);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    // Every disc of both manifests was held out by exactly one fold.
    assert!(
        log.contains("calibration fitted on the out-of-fold logits of 40 discs (2 fold models)"),
        "{log}"
    );
    let model = Classifier::from_bytes("final", &std::fs::read(&out).unwrap()).unwrap();
    let details = &model.card().training.details;
    let (train, validation) = (
        details["split"]["train"].as_u64().unwrap(),
        details["split"]["validation"].as_u64().unwrap(),
    );
    assert_eq!(train + validation, 40, "{details}");
    assert!(
        (1..=10).contains(&validation),
        "only B keeps validation discs: {details}"
    );
    assert_eq!(details["calibration"]["discs"], 40);
    // With no real (binary-labelled) validation disc left, B's reports on the run.
    let run_report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&path("final.report")).join("metrics.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run_report["n"].as_u64(), Some(validation), "{run_report}");
    assert_eq!(
        run_report["sources"].as_array().map(Vec::len),
        Some(1),
        "{run_report}"
    );
    assert!(
        run_report["accuracy"]["point"].as_f64().is_some(),
        "{run_report}"
    );
    // The same fit, made here from the fold models and the same folds.
    let data = endplate::train::Dataset::load_jittered(
        &[ma.into(), mb.into()],
        &RoiParams::default(),
        None,
    )
    .unwrap();
    let folds: Vec<Classifier> = (1..=2)
        .map(|f| {
            let p = Path::new(&report).join(format!("fold-{f}/model.onnx"));
            Classifier::from_bytes("fold", &std::fs::read(p).unwrap()).unwrap()
        })
        .collect();
    let config = endplate::train::TrainConfig {
        split_by_subject: true,
        ..Default::default()
    };
    let want = endplate::train::fold_calibration::calibrate_on_folds(&data, &config, &folds)
        .unwrap()
        .calibration;
    // Equal but for the card's JSON round trip of each number.
    let numbers = |c: &endplate::model::calibration::Calibration| {
        let v = serde_json::to_value(c).unwrap();
        v["sigmoids"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| [s["a"].as_f64().unwrap(), s["b"].as_f64().unwrap()])
            .collect::<Vec<f64>>()
    };
    let (got, wanted) = (numbers(&model.card().calibration), numbers(&want));
    assert_eq!(got.len(), 8);
    assert!(
        got.iter().zip(&wanted).all(|(g, w)| (g - w).abs() < 1e-12),
        "{got:?} against {wanted:?}"
    );
    assert!(matches!(
        want,
        endplate::model::calibration::Calibration::Platt { .. }
    ));
}

/// `--mirror-average` changes no learning, so a finished run resumed with it is recalibrated
/// and rewritten, not trained again: how the bundled model and finished cross-validations get
/// it without hours of training on two cores.
#[cfg(feature = "train")]
#[test]
fn resuming_a_finished_run_with_mirror_average_recalibrates_the_same_weights() {
    use endplate::model::inference::mirrored;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    four_phantom_subjects(&data);
    let out = dir.path().join("m.onnx");
    let manifest = data.join("manifest.csv");
    let (manifest, out_s) = (manifest.to_str().unwrap(), out.to_str().unwrap());
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "train",
            "--manifest",
            manifest,
            "--out",
            out_s,
            "--epochs",
            "1",
            "--batch",
            "4",
            "--unfreeze",
            "all",
            "--split-by",
            "subject",
            "--synthetic",
        ];
        a.extend_from_slice(extra);
        a
    };
    let o = endplate(&args(&[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = Classifier::from_bytes("plain", &std::fs::read(&out).unwrap()).unwrap();
    assert!(!plain.card().mirror_average);

    let o = endplate(&args(&["--resume", "--mirror-average"]));
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(!log.contains("train loss"), "no epoch runs again: {log}");
    let averaged = Classifier::from_bytes("averaged", &std::fs::read(&out).unwrap()).unwrap();
    assert!(averaged.card().mirror_average);
    assert_eq!(
        averaged.card().training.epochs,
        plain.card().training.epochs
    );
    assert_ne!(
        averaged.card().calibration,
        plain.card().calibration,
        "fitted again on the averaged validation logits"
    );
    // The same weights: the averaged logits are the plain model's on the ROI and its mirror.
    let input: Vec<f32> = (0..3 * 128 * 128)
        .map(|i| ((i * 7919) % 251) as f32 / 251.0)
        .collect();
    let own = plain.logits(input.clone(), 1).unwrap()[0];
    let other = plain.logits(mirrored(&input, 128), 1).unwrap()[0];
    let both = averaged.logits(input, 1).unwrap()[0];
    for k in 0..4 {
        assert!(
            (both[k] - 0.5 * (own[k] + other[k])).abs() <= 1e-4,
            "{both:?} against {own:?} and {other:?}"
        );
    }
}

#[cfg(feature = "train")]
#[test]
fn a_cross_validation_stopped_during_a_fold_resumes_that_fold_instead_of_keeping_it() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    four_phantom_subjects(&data);
    let out = dir.path().join("cv.onnx");
    let manifest = data.join("manifest.csv");
    let (manifest, out) = (manifest.to_str().unwrap(), out.to_str().unwrap());
    let args = |resume: bool| {
        let mut a = two_folds(manifest, out, "4", "4");
        if resume {
            a.push("--resume");
        }
        a
    };
    // Ctrl-C as soon as the second fold begins (its four epochs take seconds).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_endplate"))
        .args(args(false))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("fold-2 of 2") {
            let kill = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(kill.success());
        }
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains("stopped during fold-2"), "{log}");
    let report = dir.path().join("cv.report");
    assert!(report.join("fold-1/model.onnx").is_file(), "{log}");
    assert!(
        !report.join("fold-2/model.onnx").exists(),
        "a fold cut short must not look done: {log}"
    );
    assert!(!report.join("cross_validation.json").exists());

    let o = endplate(&args(true));
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("fold-1 of 2: done in an earlier run, kept"),
        "{log}"
    );
    assert!(
        !log.contains("fold-2 of 2: done in an earlier run"),
        "{log}"
    );
    assert!(report.join("fold-2/model.onnx").is_file());
    let cv: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("cross_validation.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cv["n"], 20, "every disc held out exactly once: {cv}");
}

#[cfg(feature = "train")]
#[test]
fn train_with_folds_cross_validates_and_pretrain_makes_an_init_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    four_phantom_subjects(&data);
    let out = dir.path().join("cv.onnx");
    let manifest = data.join("manifest.csv");
    let o = endplate(&two_folds(
        manifest.to_str().unwrap(),
        out.to_str().unwrap(),
        "1",
        "8",
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("2-fold cross-validation, 20 discs"),
        "{stdout}"
    );
    assert!(
        !out.exists(),
        "cross-validation writes fold models, not --out"
    );
    let report = dir.path().join("cv.report");
    let cv: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("cross_validation.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cv["k"], 2);
    assert_eq!(cv["n"], 20, "every disc held out exactly once");
    assert_eq!(cv["accuracy"]["folds"].as_array().unwrap().len(), 2);
    for fold in ["fold-1", "fold-2"] {
        let model = Classifier::from_bytes(
            fold,
            &std::fs::read(report.join(fold).join("model.onnx")).unwrap(),
        )
        .unwrap();
        assert!(model.card().training.synthetic);
        for f in [
            "learning_loss.svg",
            "learning_accuracy.svg",
            "roc.svg",
            "reliability.svg",
            "confusion.svg",
        ] {
            assert!(report.join(fold).join(f).is_file(), "{fold}/{f}");
        }
    }

    // A second stage cross-validated on top of the first: fold K starts from the first stage's
    // fold-K model, the head alone learning.
    let stage = |seed: &str, folds: Option<&str>| {
        let staged = dir.path().join(format!("staged-{seed}.onnx"));
        let mut args = vec![
            "train",
            "--manifest",
            data.join("manifest.csv").to_str().unwrap(),
            "--out",
            staged.to_str().unwrap(),
            "--epochs",
            "1",
            "--batch",
            "8",
            "--unfreeze",
            "top0",
            "--split-by",
            "subject",
            "--seed",
            seed,
            "--init",
            report.to_str().unwrap(),
            "--lr-schedule",
            "cosine",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if let Some(k) = folds {
            args.extend(["--folds".into(), k.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (endplate(&args), staged)
    };
    let (o, staged) = stage("1", Some("2"));
    assert!(o.status.success(), "{}", stderr(&o));
    for fold in ["fold-1", "fold-2"] {
        let m = staged
            .with_extension("report")
            .join(fold)
            .join("model.onnx");
        let model = Classifier::from_bytes(fold, &std::fs::read(m).unwrap()).unwrap();
        let init = &model.card().training.init;
        let from = report.join(fold).join("model.onnx");
        assert!(init.contains(&from.display().to_string()), "{init}");
        assert_eq!(
            model.card().training.details["unfreeze"]["Top"],
            0,
            "{init}"
        );
        assert_eq!(model.card().training.details["lr_schedule"], "cosine");
    }
    // Other folds (another seed) would start fold 1 from a model that learnt one of its
    // held-out subjects: refused, naming the subject.
    let (o, _) = stage("3", Some("2"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("was trained on")
            && stderr(&o).contains("same manifests, --seed and --split-by"),
        "{}",
        stderr(&o)
    );
    // A folder without --folds has no fold to pick.
    let (o, _) = stage("1", None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("only makes sense with --folds"),
        "{}",
        stderr(&o)
    );

    // Self-supervised pretraining on the same discs, labels unused, then a backbone for --init.
    // An unlabelled row whose endplates nearly meet (as a real manifest keeps a disc it could
    // not grade) is left out and named, not fatal.
    let text = std::fs::read_to_string(data.join("manifest.csv")).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let first: Vec<&str> = rows.lines().next().unwrap().split(',').collect();
    let flat = format!(
        "{},{},{},,40,60,90,60,40,61,90,61\n",
        first[0], first[1], first[2]
    );
    let pretext = data.join("pretext.csv");
    std::fs::write(&pretext, format!("{header}\n{flat}{rows}")).unwrap();
    let backbone = dir.path().join("backbone.onnx");
    let o = endplate(&[
        "pretrain",
        "--manifest",
        pretext.to_str().unwrap(),
        "--max-discs",
        "10",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--out",
        backbone.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pretext validation accuracy"),
        "{}",
        stderr(&o)
    );
    let left_out = format!("left out {}: {} {}", pretext.display(), first[0], first[2]);
    assert!(
        stderr(&o).contains(&left_out) && stderr(&o).contains("collinear"),
        "{left_out}: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("9 discs in four quarter turns each"),
        "{}",
        stderr(&o)
    );
    let model = dir.path().join("from-backbone.onnx");
    let o = endplate(&[
        "train",
        "--manifest",
        data.join("manifest.csv").to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch",
        "8",
        "--unfreeze",
        "all",
        "--init",
        backbone.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("epoch   1"),
        "epoch lines reach a log file: {}",
        stderr(&o)
    );
    let trained = Classifier::from_bytes("m", &std::fs::read(&model).unwrap()).unwrap();
    assert!(
        trained.card().training.init.contains("backbone.onnx"),
        "{}",
        trained.card().training.init
    );
}

#[cfg(feature = "train")]
/// A few real SPIDER discs (the first `patients` patients of the project's real manifest) in a
/// manifest of their own, image paths made absolute; None where the shared data are absent.
fn real_subset(dir: &Path, patients: usize) -> Option<(std::path::PathBuf, usize, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("../shared/data/spider-t2").is_dir() {
        eprintln!("skipped: ../shared/data/spider-t2 is absent");
        return None;
    }
    let text = std::fs::read_to_string(root.join("data/spider/manifest.csv")).unwrap();
    let mut rows = endplate::manifest::parse("manifest.csv", &text).unwrap();
    rows.retain(|r| r.label.is_some());
    let mut keep = Vec::new();
    for r in rows {
        if !keep.contains(&r.subject) {
            if keep.len() == patients {
                continue;
            }
            keep.push(r.subject.clone());
        }
    }
    let mut rows = endplate::manifest::parse("manifest.csv", &text).unwrap();
    rows.retain(|r| r.label.is_some() && keep.contains(&r.subject));
    for r in &mut rows {
        r.image = root
            .join("data/spider")
            .join(&r.image)
            .display()
            .to_string();
    }
    // Two of SPIDER's other gradings ride along, for `train --auxiliary`.
    let all = endplate::manifest::parse("manifest.csv", &text).unwrap();
    let graded = |name: &str| {
        endplate::manifest::number_column("manifest.csv", &text, name, |_| true, "a number")
            .unwrap()
            .unwrap()
    };
    let (up, modic) = (graded("up_endplate"), graded("modic"));
    let cell = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let extra: Vec<Vec<String>> = all
        .iter()
        .enumerate()
        .filter(|(_, r)| r.label.is_some() && keep.contains(&r.subject))
        .map(|(i, _)| vec![cell(up[i]), cell(modic[i])])
        .collect();
    let path = dir.join("real.csv");
    std::fs::write(
        &path,
        endplate::manifest::write(&rows, &["up_endplate", "modic"], &extra),
    )
    .unwrap();
    Some((path, rows.len(), keep.len()))
}

#[cfg(feature = "train")]
/// `endplate train` on `manifests` for one epoch per fold, two folds by subject, from the
/// bundled model: the short run the cross-validation tests share.
fn two_folds_from_the_bundled_model(manifests: &[&Path], out: &Path, more: &[&str]) -> Output {
    let init = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/endplate-default.onnx");
    let mut args = vec!["train".to_string()];
    for m in manifests {
        args.extend(["--manifest".to_string(), m.display().to_string()]);
    }
    args.extend(
        [
            "--out",
            out.to_str().unwrap(),
            "--init",
            init.to_str().unwrap(),
            "--epochs",
            "1",
            "--batch",
            "8",
            "--split-by",
            "subject",
            "--folds",
            "2",
            "--keep-last",
        ]
        .iter()
        .chain(more)
        .map(|a| a.to_string()),
    );
    endplate(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[cfg(feature = "train")]
#[test]
fn a_patient_in_two_manifests_is_held_out_in_both_and_resampled_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((real, _, patients)) = real_subset(dir.path(), 6) else {
        return;
    };
    // The same patients' discs in two files, as data/spider/thoracic.csv sits beside
    // manifest.csv: each patient's first three discs in one, the rest in the other.
    let text = std::fs::read_to_string(&real).unwrap();
    let rows = endplate::manifest::parse("real.csv", &text).unwrap();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for r in rows {
        let k = seen.entry(r.subject.clone()).or_default();
        *k += 1;
        if *k <= 3 { &mut first } else { &mut second }.push(r);
    }
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    std::fs::write(&a, endplate::manifest::write(&first, &[], &[])).unwrap();
    std::fs::write(&b, endplate::manifest::write(&second, &[], &[])).unwrap();
    let report = dir.path().join("two.report");
    let o = two_folds_from_the_bundled_model(
        &[&a, &b],
        &dir.path().join("two.onnx"),
        &["--report", report.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for fold in ["fold-1", "fold-2"] {
        let text = std::fs::read_to_string(report.join(fold).join("predictions.csv")).unwrap();
        // Held-out patients per manifest ("PATH:subject").
        let held = |m: &Path| -> std::collections::BTreeSet<String> {
            let prefix = format!("{}:", m.display());
            csv::Reader::from_reader(text.as_bytes())
                .records()
                .filter_map(|r| r.unwrap()[0].strip_prefix(&prefix).map(String::from))
                .collect()
        };
        let (ha, hb) = (held(&a), held(&b));
        assert!(!ha.is_empty() && ha.len() < patients, "{fold}: {ha:?}");
        assert_eq!(
            ha, hb,
            "{fold}: a patient held out in one file and trained in the other"
        );
    }
    let cv: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("cross_validation.json")).unwrap(),
    )
    .unwrap();
    let pooled = &cv["lesion_vs_normal_pooled"];
    assert_eq!(
        (pooled["n"].as_u64(), pooled["subjects"].as_u64()),
        (
            Some((first.len() + second.len()) as u64),
            Some(patients as u64)
        ),
        "every disc once, each patient one draw of the bootstrap"
    );
}

#[cfg(feature = "train")]
#[test]
fn real_binary_labels_evaluate_by_subject_and_train_beside_phantoms() {
    let dir = tempfile::tempdir().unwrap();
    let Some((real, n_real, patients)) = real_subset(dir.path(), 6) else {
        return;
    };
    // Evaluate: binary truth gives lesion-vs-normal only, resampled by patient.
    let o = endplate(&["evaluate", "--manifest", real.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        m.get("accuracy").is_none(),
        "no Table 3 without lesion types"
    );
    let l = &m["lesion_vs_normal"];
    assert_eq!(
        (l["n"].as_u64(), l["subjects"].as_u64()),
        (Some(n_real as u64), Some(patients as u64))
    );
    let auc = &l["auc"];
    assert!(
        auc["lo"].as_f64() <= auc["point"].as_f64() && auc["point"].as_f64() <= auc["hi"].as_f64()
    );

    // Train: real discs next to four-class phantoms, from the bundled (folded) model, 2 folds.
    let data = dir.path().join("phantoms");
    four_phantom_subjects(&data);
    let out = dir.path().join("mixed.onnx");
    let o = two_folds_from_the_bundled_model(
        &[&real, &data.join("manifest.csv")],
        &out,
        &[
            "--share",
            "3",
            "--share",
            "1",
            "--auxiliary",
            "up_endplate,modic",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("unfolding the init model") && err.contains("lesion of unknown type"),
        "{err}"
    );
    // The phantoms have no gradings: only the real discs learn them.
    assert!(
        err.contains(&format!(
            "auxiliary targets (weight 0.5): up_endplate on {n_real} discs, modic on {n_real} discs"
        )),
        "{err}"
    );
    let report = dir.path().join("mixed.report");
    let cv: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("cross_validation.json")).unwrap(),
    )
    .unwrap();
    // The pooled figure covers the real discs only, each held out once.
    assert_eq!(
        cv["lesion_vs_normal_pooled"]["n"].as_u64(),
        Some(n_real as u64)
    );
    let fold: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("fold-1/metrics.json")).unwrap())
            .unwrap();
    assert_eq!(fold["sources"].as_array().unwrap().len(), 2);
    assert!(
        fold["sources"][1]["metrics"].get("accuracy").is_some(),
        "phantoms keep Table 3"
    );
    assert!(report.join("fold-1/roc_lesion.svg").is_file());
    let model = Classifier::from_bytes(
        "fold-1",
        &std::fs::read(report.join("fold-1/model.onnx")).unwrap(),
    )
    .unwrap();
    let details = &model.card().training.details;
    assert_eq!(details["kept"], "last epoch");
    assert_eq!(
        details["sampler_balance"],
        "each manifest in proportion to its share [3.0, 1.0], and within it each label equally often"
    );
    assert_eq!(
        details["sources"][0]["lesion"].as_u64().unwrap()
            + details["sources"][0]["normal"].as_u64().unwrap(),
        n_real as u64
    );
    assert!(model.card().training.init.contains("head kept"));
    assert_eq!(
        details["auxiliary"]["columns"],
        serde_json::json!(["up_endplate", "modic"])
    );
    // The fold model learnt on its training half of the real discs; it still has four classes.
    let known = details["auxiliary"]["known_training_discs"][0]
        .as_u64()
        .unwrap();
    assert!(known > 0 && known < n_real as u64, "{known} of {n_real}");
    assert_eq!(model.card().classes.len(), 4);
}

#[test]
fn train_refuses_an_auxiliary_column_no_manifest_has_before_reading_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.csv");
    std::fs::write(
        &m,
        "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4,modic\nabsent.png,s1,L4L5,lesion,1,1,9,1,1,5,9,5,1\n",
    )
    .unwrap();
    for (column, want) in [
        ("modik", "--auxiliary modik: no manifest of this run"),
        ("subject", "`s1` is not 0, 1 or a probability between them"),
    ] {
        let o = endplate(&[
            "train",
            "--manifest",
            m.to_str().unwrap(),
            "--out",
            "m.onnx",
            "--auxiliary",
            column,
        ]);
        assert!(!o.status.success(), "{column}");
        assert_eq!(o.status.code(), Some(2), "{column}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(want) && !err.contains("absent.png"),
            "{column}: {err}"
        );
    }
    let o = endplate(&[
        "train",
        "--manifest",
        m.to_str().unwrap(),
        "--out",
        "m.onnx",
        "--auxiliary-weight",
        "11",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("a weight in [0, 10]"));
}

#[test]
fn train_refuses_shares_that_do_not_match_the_manifests_before_reading_anything() {
    for (manifests, share, want) in [
        (
            &["absent-a.csv", "absent-b.csv"][..],
            "3",
            "--share: 1 values for 2 --manifest files; give one per manifest",
        ),
        (&["m.csv"][..], "0", "a positive number"),
    ] {
        let mut args = vec!["train", "--out", "m.onnx", "--share", share];
        for m in manifests {
            args.extend(["--manifest", m]);
        }
        let o = endplate(&args);
        assert_eq!(o.status.code(), Some(2), "{share}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{share}: {err}");
    }
}

#[test]
fn train_refuses_an_augmentation_outside_its_range_with_the_accepted_values() {
    for (flag, bad) in [
        ("--augment-gamma", "0.9"),
        ("--augment-scale", "0.6"),
        ("--augment-contrast", "x"),
    ] {
        let o = endplate(&["train", "--manifest", "m.csv", "--out", "m.onnx", flag, bad]);
        assert_eq!(o.status.code(), Some(2), "{flag} {bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("a fraction in [0, 0.5]") && err.contains(flag),
            "{flag} {bad}: {err}"
        );
    }
}

#[test]
fn train_refuses_a_corner_jitter_outside_its_range_with_the_accepted_values() {
    for bad in ["0.5", "0", "a"] {
        let o = endplate(&[
            "train",
            "--manifest",
            "m.csv",
            "--out",
            "m.onnx",
            "--corner-jitter",
            bad,
        ]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("a fraction of the disc's width in (0, 0.2]"),
            "{bad}: {err}"
        );
    }
}
