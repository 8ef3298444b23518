//! Studies: many DICOM files grouped into series, slices ordered along the normal, the sagittal
//! T2 series and its mid-sagittal slice proposed, foreign files listed and skipped; the CLI's
//! `--series`. The folders are written here: sagittal and axial series mixed in one folder,
//! shuffled file names and instance numbers, a missing and a duplicate slice, a foreign file.

mod common;

use common::dicom::{self, Pixels, Spec};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use endplate::image::decode::{decode_file, DecodeOptions};
use endplate::study::{self, Plane, Study};
use std::path::Path;
use std::process::Command;

const SAGITTAL: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

struct SeriesSpec<'a> {
    uid: &'a str,
    number: i32,
    description: &'a str,
    orientation: Option<[f64; 6]>,
    te: f64,
    tr: f64,
}

/// One slice file: every pixel holds `value`, so a decoded file tells which slice it was.
fn slice_file(
    s: &SeriesSpec,
    index: usize,
    instance: i32,
    position: Option<[f64; 3]>,
    value: u16,
) -> Vec<u8> {
    let ds = |v: String| PrimitiveValue::from(v);
    let multi = |v: &[f64]| {
        ds(v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("\\"))
    };
    let mut extra = vec![
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(s.uid),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(format!("{}.{index}", s.uid)),
        ),
        DataElement::new(tags::SERIES_NUMBER, VR::IS, ds(s.number.to_string())),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, ds(instance.to_string())),
        DataElement::new(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            PrimitiveValue::from(s.description),
        ),
        DataElement::new(tags::ECHO_TIME, VR::DS, ds(s.te.to_string())),
        DataElement::new(tags::REPETITION_TIME, VR::DS, ds(s.tr.to_string())),
    ];
    if let Some(o) = s.orientation {
        extra.push(DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            multi(&o),
        ));
    }
    if let Some(p) = position {
        extra.push(DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            multi(&p),
        ));
    }
    dicom::build_with(
        Spec {
            ts: dicom::EXPLICIT_LE,
            rows: 8,
            cols: 6,
            frames: 1,
            bits: 16,
            photometric: "MONOCHROME2",
            rescale: None,
            window: None,
            pixels: Pixels::Native16(vec![value; 48]),
        },
        extra,
    )
}

/// A mixed study folder. The sagittal T2 series has 11 planned slices at x = -25 ... 25 mm
/// (slice k holds the value 1000 + k); slice 2 is missing and slice 7 is there twice. File names
/// are shuffled and instance numbers run backwards, so only positions give the order.
fn write_study(dir: &Path) {
    let t2 = SeriesSpec {
        uid: "1.2.826.0.1.100",
        number: 3,
        description: "SAG T2 TSE",
        orientation: Some(SAGITTAL),
        te: 110.0,
        tr: 3500.0,
    };
    let t1 = SeriesSpec {
        uid: "1.2.826.0.1.200",
        number: 2,
        description: "SAG T1 TSE",
        orientation: Some(SAGITTAL),
        te: 10.0,
        tr: 550.0,
    };
    let axial = SeriesSpec {
        uid: "1.2.826.0.1.300",
        number: 4,
        description: "AX T2",
        orientation: Some(AXIAL),
        te: 100.0,
        tr: 4000.0,
    };
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let mut name = 0u32;
    let mut next_name = || {
        // A fixed scramble of 0..: names in no slice order.
        name += 1;
        format!("IM{:04}", (name * 7919) % 1000)
    };
    for k in 0..11 {
        if k == 2 {
            continue;
        }
        let pos = [-25.0 + 5.0 * k as f64, -100.0, 50.0];
        let bytes = slice_file(&t2, k, 20 - k as i32, Some(pos), 1000 + k as u16);
        std::fs::write(dir.join(next_name()), &bytes).unwrap();
        if k == 7 {
            std::fs::write(sub.join("copy-of-seven.dcm"), &bytes).unwrap();
        }
    }
    for k in 0..9 {
        let pos = [-20.0 + 5.0 * k as f64, -100.0, 50.0];
        let bytes = slice_file(&t1, k, k as i32 + 1, Some(pos), 2000 + k as u16);
        std::fs::write(dir.join(next_name()), &bytes).unwrap();
    }
    for k in 0..5 {
        let pos = [-100.0, -100.0, 10.0 * k as f64];
        let bytes = slice_file(&axial, k, k as i32 + 1, Some(pos), 3000 + k as u16);
        std::fs::write(sub.join(next_name()), &bytes).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "scanned on a Tuesday\n").unwrap();
    std::fs::write(
        dir.join("key-image.png"),
        common::encode_png_gray8(4, 4, &[9; 16]),
    )
    .unwrap();
}

fn value_of(file: &str) -> f32 {
    decode_file(Path::new(file), DecodeOptions::default())
        .unwrap()
        .get(0, 0)
}

#[test]
fn a_mixed_folder_gives_the_sagittal_t2_series_and_its_mid_slice() {
    let dir = tempfile::tempdir().unwrap();
    write_study(dir.path());
    let study = study::read_dir(dir.path()).unwrap();

    let names: Vec<&str> = study
        .series
        .iter()
        .map(|s| s.description.as_str())
        .collect();
    assert_eq!(
        names,
        ["SAG T1 TSE", "SAG T2 TSE", "AX T2"],
        "series by number"
    );
    let planes: Vec<Plane> = study.series.iter().map(|s| s.plane).collect();
    assert_eq!(planes, [Plane::Sagittal, Plane::Sagittal, Plane::Axial]);

    let skipped: Vec<&str> = study.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().any(|s| s.ends_with("notes.txt")));
    assert!(skipped.iter().any(|s| s.ends_with("key-image.png")));

    let t2 = &study.series[study.proposed.expect("a proposal")];
    assert_eq!(t2.description, "SAG T2 TSE");
    assert_eq!(t2.ordered_by, "position");
    assert_eq!(t2.slices.len(), 10, "11 planned, one missing");
    assert_eq!(t2.duplicates.len(), 1, "{:?}", t2.duplicates);
    assert_eq!(t2.spacing_mm, Some((0.5, 0.6)));
    // Ordered along the normal, whatever the names and instance numbers say.
    let values: Vec<f32> = t2.slices.iter().map(|s| value_of(&s.name)).collect();
    let mut sorted = values.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert!(
        values == sorted || values.iter().rev().copied().collect::<Vec<_>>() == sorted,
        "{values:?}"
    );

    // The slice nearest the centre (x = 0 mm) is planned slice 5, though slice 2 is missing.
    let pick = study.pick(None, None).unwrap();
    assert_eq!(value_of(pick.file), 1005.0);
    assert_eq!(t2.slices[pick.slice].position_mm.map(f64::abs), Some(0.0));
    // An asked slice wins; one past the end is refused by name.
    let first = study.pick(None, Some(0)).unwrap();
    assert!([1000.0, 1010.0].contains(&value_of(first.file)));
    let e = study.pick(None, Some(10)).unwrap_err().to_string();
    assert!(e.contains("slice 10") && e.contains("SAG T2 TSE"), "{e}");
}

#[test]
fn without_positions_instance_numbers_order_the_slices() {
    let s = SeriesSpec {
        uid: "1.2.826.0.1.400",
        number: 1,
        description: "t2_tse_sag",
        orientation: Some(SAGITTAL),
        te: 90.0,
        tr: 3000.0,
    };
    let files: Vec<(String, Vec<u8>)> = [4, 1, 3, 2, 5]
        .iter()
        .map(|&n| {
            (
                format!("f{n}"),
                slice_file(&s, n as usize, n, None, n as u16),
            )
        })
        .collect();
    let study = Study::from_files(files.iter().map(|(n, b)| (n.clone(), b.as_slice())));
    let t2 = &study.series[study.proposed.unwrap()];
    assert_eq!(t2.ordered_by, "instance number");
    let order: Vec<&str> = t2.slices.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["f1", "f2", "f3", "f4", "f5"]);
    assert_eq!(study.pick(None, None).unwrap().file, "f3");
}

#[test]
fn a_folder_without_a_sagittal_series_proposes_none_and_says_so() {
    let s = SeriesSpec {
        uid: "1.2.826.0.1.500",
        number: 1,
        description: "AX T2",
        orientation: Some(AXIAL),
        te: 90.0,
        tr: 3000.0,
    };
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|k| {
            (
                format!("a{k}"),
                slice_file(&s, k, k as i32, Some([0.0, 0.0, k as f64]), 1),
            )
        })
        .chain(std::iter::once(("junk".to_string(), vec![1, 2, 3])))
        .collect();
    let study = Study::from_files(files.iter().map(|(n, b)| (n.clone(), b.as_slice())));
    assert_eq!(study.proposed, None);
    assert_eq!(study.skipped.len(), 1);
    let e = study.pick(None, None).unwrap_err().to_string();
    assert!(
        e.contains("no sagittal series") && e.contains("AX T2"),
        "{e}"
    );
    // Choosing the series by hand still works.
    assert_eq!(study.pick(Some(0), None).unwrap().slice, 1);
}

#[test]
fn hostile_headers_are_skipped_not_fatal() {
    let s = SeriesSpec {
        uid: "1.2.826.0.1.600",
        number: 1,
        description: "SAG T2",
        orientation: Some(SAGITTAL),
        te: 90.0,
        tr: 3000.0,
    };
    let good = slice_file(&s, 0, 1, Some([0.0; 3]), 7);
    let mut files = vec![("good".to_string(), good.clone())];
    for cut in [0, 10, 131, 200, good.len() / 2] {
        files.push((format!("cut{cut}"), good[..cut].to_vec()));
    }
    let study = Study::from_files(files.iter().map(|(n, b)| (n.clone(), b.as_slice())));
    assert_eq!(study.series.len(), 1);
    assert!(study.skipped.len() >= 3, "{:?}", study.skipped);
}

#[test]
fn cli_detect_and_classify_take_the_series_and_name_file_and_slice() {
    let dir = tempfile::tempdir().unwrap();
    write_study(dir.path());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_endplate"))
            .args(args)
            .output()
            .unwrap()
    };
    let d = dir.path().to_str().unwrap();
    let out = run(&["detect", "--series", d, "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("notes.txt") && err.contains("mid-sagittal"),
        "{err}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = json["series"]["file"].as_str().unwrap();
    assert_eq!(json["image"].as_str(), Some(file));
    assert_eq!(value_of(file), 1005.0);
    assert_eq!(json["series"]["series_description"], "SAG T2 TSE");
    // Ordered along the normal (-x here): planned slices 10, 9, 8, 7, 6, 5, ...
    assert_eq!(json["series"]["slice"], 5);

    let (model, _) = common::random_model(3, endplate::model::file::BatchNorm::Fold);
    let elsewhere = tempfile::tempdir().unwrap();
    let model_path = elsewhere.path().join("m.onnx");
    std::fs::write(&model_path, model).unwrap();
    let out = run(&[
        "classify",
        "--series",
        d,
        "--slice",
        "0",
        "--corners",
        "1,2,5,2,1,6,5,6",
        "--model",
        model_path.to_str().unwrap(),
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["series"]["slice"], 0);
    assert_eq!(json["series"]["chosen"], "asked");
    assert_eq!(
        json["results"][0]["image"].as_str(),
        json["series"]["file"].as_str()
    );
}
