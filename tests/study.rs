//! Studies: many DICOM files grouped into series, slices ordered along the normal, the sagittal
//! T2 series and its mid-sagittal slice proposed, foreign files listed and skipped; the CLI's
//! `--series`. The folders are written here: sagittal and axial series mixed in one folder,
//! shuffled file names and instance numbers, a missing and a duplicate slice, a foreign file.

mod common;
use common::endplate;

use common::study::{
    damaged_dicomdir, dicomdir, slice_file, zip, Image, SeriesSpec, AXIAL, SAGITTAL,
};
use endplate::image::decode::{decode, decode_file, DecodeOptions};
use endplate::study::{self, Plane, Study};
use std::path::Path;
use std::process::Command;

/// A mixed study, as (path, bytes). The sagittal T2 series has 11 planned slices at
/// x = -25 ... 25 mm (slice k holds the value 1000 + k); slice 2 is missing and slice 7 is there
/// twice. File names are shuffled and instance numbers run backwards, so only positions give the
/// order.
fn study_files() -> Vec<(String, Vec<u8>)> {
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
    let mut files = Vec::new();
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
        let bytes = slice_file(
            &t2,
            k,
            20 - k as i32,
            Some(pos),
            Image::flat(1000 + k as u16),
        );
        files.push((next_name(), bytes.clone()));
        if k == 7 {
            files.push(("sub/copy-of-seven.dcm".into(), bytes));
        }
    }
    for k in 0..9 {
        let pos = [-20.0 + 5.0 * k as f64, -100.0, 50.0];
        let bytes = slice_file(
            &t1,
            k,
            k as i32 + 1,
            Some(pos),
            Image::flat(2000 + k as u16),
        );
        files.push((next_name(), bytes));
    }
    for k in 0..5 {
        let pos = [-100.0, -100.0, 10.0 * k as f64];
        let bytes = slice_file(
            &axial,
            k,
            k as i32 + 1,
            Some(pos),
            Image::flat(3000 + k as u16),
        );
        files.push((format!("sub/{}", next_name()), bytes));
    }
    files.push(("notes.txt".into(), b"scanned on a Tuesday\n".to_vec()));
    files.push((
        "key-image.png".into(),
        common::encode_png_gray8(4, 4, &[9; 16]),
    ));
    files
}

/// [`study_files`] written into `dir`.
fn write_study(dir: &Path) {
    write_files(dir, &study_files());
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
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
    let (study, _) = study::open(dir.path()).unwrap();

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
                slice_file(&s, n as usize, n, None, Image::flat(n as u16)),
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
                slice_file(&s, k, k as i32, Some([0.0, 0.0, k as f64]), Image::flat(1)),
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
    let good = slice_file(&s, 0, 1, Some([0.0; 3]), Image::flat(7));
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

/// The value every pixel of a study's file holds, read back through the study's own sources.
fn value_in(sources: &mut study::Sources, name: &str) -> f32 {
    let bytes = sources.read(name).unwrap();
    decode(&bytes, name, DecodeOptions::default())
        .unwrap()
        .get(0, 0)
}

#[test]
fn a_zipped_study_gives_the_same_series_and_slice_as_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    // Inside a top folder, as "Compress" in a file manager makes it; plus a zip within the zip.
    let mut files: Vec<(String, Vec<u8>)> = study_files()
        .into_iter()
        .map(|(n, b)| (format!("STUDY1/{n}"), b))
        .collect();
    files.push(("STUDY1/old.zip".into(), zip(&files[..2])));
    let path = dir.path().join("study.zip");
    std::fs::write(&path, zip(&files)).unwrap();

    let (study, mut sources) = study::open(&path).unwrap();
    let described: Vec<(&str, usize)> = study
        .series
        .iter()
        .map(|s| (s.description.as_str(), s.slices.len()))
        .collect();
    assert_eq!(
        described,
        [("SAG T1 TSE", 9), ("SAG T2 TSE", 10), ("AX T2", 5)]
    );
    let mut skipped: Vec<(&str, &str)> = study
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    skipped.sort();
    let zip_name = path.display().to_string();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0].0, format!("{zip_name}/STUDY1/key-image.png"));
    assert_eq!(skipped[1].0, format!("{zip_name}/STUDY1/notes.txt"));
    assert_eq!(skipped[2].0, format!("{zip_name}/STUDY1/old.zip"));
    assert!(skipped[2].1.contains("zip inside"), "{}", skipped[2].1);

    let pick = study.pick(None, None).unwrap();
    assert_eq!(pick.series.description, "SAG T2 TSE");
    assert!(pick.file.starts_with(&format!("{zip_name}/STUDY1/IM")));
    assert_eq!(value_in(&mut sources, pick.file), 1005.0);
    let file = pick.file.to_string();

    // The CLI takes the zip as it takes the folder, and names the entry it used.
    let out = endplate(&["detect", "--series", path.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["series"]["file"].as_str(), Some(file.as_str()));
    assert_eq!(json["image"].as_str(), Some(file.as_str()));
    assert_eq!(json["series"]["slice"], 5);
    assert_eq!(json["series"]["spacing_mm"], serde_json::json!([0.5, 0.6]));
    assert!(
        err.contains("old.zip") && err.contains("zip inside"),
        "{err}"
    );
}

/// Overwrite the little-endian u32 at `at`.
fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Offsets of every central directory header (`PK\1\2`) and local header (`PK\3\4`).
fn headers(bytes: &[u8], signature: &[u8; 4]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == signature)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn zip_bombs_and_lying_zips_are_refused_with_the_limit_they_broke() {
    use study::{Archive, Limits};
    let slice = slice_file(
        &SeriesSpec {
            uid: "1.2.826.0.1.700",
            number: 1,
            description: "SAG T2",
            orientation: Some(SAGITTAL),
            te: 90.0,
            tr: 3000.0,
        },
        0,
        1,
        None,
        Image::flat(5),
    );
    let files: Vec<(String, Vec<u8>)> = (0..6).map(|k| (format!("f{k}"), slice.clone())).collect();
    let good = zip(&files);
    let small = |entries, total_bytes, entry_bytes| Limits {
        entries,
        total_bytes,
        entry_bytes,
    };
    let size = slice.len() as u64;
    assert!(Archive::open_with("ok.zip", good.clone(), small(6, 6 * size, size)).is_ok());

    let e = Archive::open_with("many.zip", good.clone(), small(5, u64::MAX, u64::MAX))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("many.zip") && e.contains("6 entries") && e.contains("5"),
        "{e}"
    );
    let e = Archive::open_with("big.zip", good.clone(), small(100, 6 * size - 1, u64::MAX))
        .unwrap_err()
        .to_string();
    assert!(e.contains("big.zip") && e.contains("zip bomb"), "{e}");
    let e = Archive::open_with("one.zip", good.clone(), small(100, u64::MAX, size - 1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("one.zip: entry f0") && e.contains("one file"),
        "{e}"
    );

    // A central directory claiming 3 GB for one entry: refused by the default limits at once.
    let mut forged = good.clone();
    let central = headers(&forged, b"PK\x01\x02");
    assert_eq!(central.len(), 6);
    put_u32(&mut forged, central[0] + 24, 3 << 30);
    let e = Archive::open("forged.zip", forged).unwrap_err().to_string();
    assert!(
        e.contains("forged.zip: entry f0 would unpack to 3072 MB"),
        "{e}"
    );

    // An entry declaring fewer bytes than it unpacks to: reading stops at the declared size and
    // refuses the entry; the study lists it as skipped and goes on with the others.
    let mut lying = good.clone();
    for at in headers(&lying, b"PK\x01\x02").into_iter().take(1) {
        put_u32(&mut lying, at + 24, 100);
    }
    for at in headers(&lying, b"PK\x03\x04").into_iter().take(1) {
        put_u32(&mut lying, at + 22, 100);
    }
    let mut archive = Archive::open("lying.zip", lying).unwrap();
    let first = archive.entries()[0].clone();
    assert_eq!(first.size, 100);
    let e = archive.read(&first).unwrap_err().to_string();
    assert!(
        e.contains("lying.zip/f0") && e.contains("more than the 100 bytes"),
        "{e}"
    );
    let mut c = study::Collector::new();
    c.add_archive(&mut archive);
    let study = c.finish();
    assert_eq!(
        study.series[0].slices.len() + study.series[0].duplicates.len(),
        5
    );
    assert_eq!(study.skipped.len(), 1);
    assert_eq!(study.skipped[0].name, "lying.zip/f0");
    assert!(
        study.skipped[0].reason.contains("more than the 100 bytes"),
        "{}",
        study.skipped[0].reason
    );

    // Not a zip at all, though it starts like one: a clear error, not a panic.
    let e = Archive::open("cut.zip", good[..good.len() / 2].to_vec())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.zip: not a readable zip file"), "{e}");
}

#[test]
fn a_dicomdir_reports_the_files_it_lists_that_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    // A CD copied to disk: the DICOMDIR lists upper-case names, the copy has them in lower
    // case, one listed file is gone, and a file the DICOMDIR does not list is there too.
    let files = study_files();
    let images: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(n, _)| !n.ends_with(".txt") && !n.ends_with(".png"))
        .collect();
    let mut listed: Vec<String> = images
        .iter()
        .map(|(n, _)| format!("dicom/{}", n.to_lowercase()))
        .collect();
    listed.push("dicom/im9999".into());
    let on_disk: Vec<(String, Vec<u8>)> = images
        .iter()
        .map(|(n, b)| (format!("cd/dicom/{}", n.to_lowercase()), b.clone()))
        .chain([("cd/README.TXT".to_string(), b"Viewer inside".to_vec())])
        .chain([(
            "cd/DICOMDIR".to_string(),
            dicomdir(&listed.iter().map(String::as_str).collect::<Vec<_>>()),
        )])
        .collect();
    write_files(dir.path(), &on_disk);
    let cd = dir.path().join("cd");

    for path in [cd.clone(), cd.join("DICOMDIR")] {
        let (study, _) = study::open(&path).unwrap();
        assert_eq!(study.dicomdirs.len(), 1, "{:?}", study.dicomdirs);
        let d = &study.dicomdirs[0];
        assert_eq!(d.listed, images.len() + 1);
        assert_eq!(
            d.missing,
            [format!("{}/DICOM/IM9999", cd.display())],
            "only the file that is not there"
        );
        assert!(
            study.skipped.iter().all(|s| !s.name.ends_with("DICOMDIR")),
            "the DICOMDIR is used, not skipped: {:?}",
            study.skipped
        );
        assert_eq!(study.skipped.len(), 1, "README.TXT: {:?}", study.skipped);
        let t2 = &study.series[study.proposed.unwrap()];
        assert_eq!(
            (t2.description.as_str(), t2.slices.len()),
            ("SAG T2 TSE", 10)
        );
    }

    let out = endplate(&[
        "detect",
        "--series",
        cd.join("DICOMDIR").to_str().unwrap(),
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = format!("lists {} files, 1 of them missing", images.len() + 1);
    assert!(err.contains(&line), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["series"]["missing"], 1);
    assert_eq!(value_of(json["series"]["file"].as_str().unwrap()), 1005.0);

    // A DICOMDIR without records is skipped with its reason; the folder is still read.
    std::fs::write(cd.join("DICOMDIR"), damaged_dicomdir()).unwrap();
    let (study, _) = study::open(&cd).unwrap();
    assert!(study.dicomdirs.is_empty());
    let reason = &study
        .skipped
        .iter()
        .find(|s| s.name.ends_with("DICOMDIR"))
        .unwrap()
        .reason;
    assert!(reason.contains("without directory records"), "{reason}");
    assert_eq!(study.series.len(), 3);
}

#[test]
fn series_takes_only_a_folder_a_zip_or_a_dicomdir() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.dcm");
    std::fs::write(&one, &study_files()[0].1).unwrap();
    let e = study::open(&one).unwrap_err().to_string();
    assert!(e.contains("one.dcm") && e.contains("--image"), "{e}");
    let e = study::open(&dir.path().join("absent"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent"), "{e}");
}

#[test]
fn damaged_zips_are_skipped_or_refused_never_a_panic() {
    use rand::{Rng, SeedableRng};
    // A small zipped study; each case flips bytes in it or cuts it, then reads it as the page's
    // worker does (a panic there would kill the worker).
    let files: Vec<(String, Vec<u8>)> = study_files().into_iter().take(6).collect();
    let original = zip(&files);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(14);
    let (mut refused, mut read) = (0, 0);
    for case in 0..300 {
        let mut bytes = original.clone();
        if case % 3 == 0 {
            bytes.truncate(rng.random_range(4..original.len()));
        } else {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
        }
        let outcome = std::panic::catch_unwind(move || {
            match study::Archive::open(&format!("case{case}.zip"), bytes) {
                Ok(mut archive) => {
                    let mut c = study::Collector::new();
                    c.add_archive(&mut archive);
                    let study = c.finish();
                    Some(study.series.iter().map(|s| s.slices.len()).sum::<usize>())
                }
                Err(e) => {
                    assert!(
                        e.to_string().starts_with(&format!("case{case}.zip: ")),
                        "{e}"
                    );
                    None
                }
            }
        });
        match outcome {
            Ok(Some(_)) => read += 1,
            Ok(None) => refused += 1,
            Err(_) => panic!("case {case} panicked"),
        }
    }
    eprintln!("damaged zips: {read} read (damaged entries skipped), {refused} refused");
    assert!(read > 0 && refused > 0, "{read} read, {refused} refused");
}
