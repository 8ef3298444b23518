//! The real SPIDER manifest in `data/spider/manifest.csv`: every labelled disc carries SPIDER's
//! own grading of that patient's disc, every disc's corners cut an ROI on its slice, and every
//! disc says how its corners were placed. Skipped, with a message, where the shared data set is
//! absent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn spider() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/spider-t2");
    if dir.join("radiological_gradings.csv").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

/// SPIDER's gradings row of every lumbar disc, by (patient, level): `IVD label` 1 is L5/S1
/// and 5 is L1/L2. Columns: Patient, IVD label, Modic, UP endplate, LOW endplate, ...,
/// Pfirrman grade (the last).
fn spider_gradings(data: &Path) -> HashMap<(String, endplate::Level), csv::StringRecord> {
    let mut reader = csv::Reader::from_path(data.join("radiological_gradings.csv")).unwrap();
    reader
        .records()
        .map(Result::unwrap)
        .filter_map(|rec| {
            let ivd: usize = rec[1].parse().unwrap();
            (1..=5)
                .contains(&ivd)
                .then(|| ((rec[0].to_string(), endplate::Level::ALL[5 - ivd]), rec))
        })
        .collect()
}

/// The project's real manifest: its path, its text and its rows.
fn real_manifest() -> (PathBuf, String, Vec<endplate::manifest::Row>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/spider/manifest.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows = endplate::manifest::parse("manifest.csv", &text).unwrap();
    (path, text, rows)
}

#[test]
fn every_labelled_disc_carries_spiders_grading_and_cuts_an_roi() {
    let Some(data) = spider() else { return };
    let (path, text, rows) = real_manifest();

    // SPIDER's label per (patient, level): lesion when either endplate is graded 1.
    let grades: HashMap<_, bool> = spider_gradings(&data)
        .into_iter()
        .map(|(k, rec)| (k, &rec[3] == "1" || &rec[4] == "1"))
        .collect();
    let mut labelled = 0;
    let mut lesions = 0;
    for r in &rows {
        let file = Path::new(&r.image).file_name().unwrap().to_str().unwrap();
        let patient = r.subject.strip_prefix("spider_").unwrap();
        assert!(
            file.starts_with(&format!("spider_{patient}_")),
            "{file} is not {}",
            r.subject
        );
        let Some(label) = r.label else { continue };
        let level = r.level.expect("every real disc has its level");
        let graded = grades[&(patient.to_string(), level)];
        assert_eq!(label.is_lesion(), graded, "{file} {level}");
        assert!(matches!(
            label,
            endplate::Label::Lesion | endplate::Label::Class(endplate::Class::Normal)
        ));
        labelled += 1;
        lesions += graded as usize;
    }
    assert!(labelled >= 400, "only {labelled} labelled discs");
    // About half of SPIDER's lumbar discs have endplate changes.
    let share = lesions as f64 / labelled as f64;
    assert!((0.35..0.65).contains(&share), "lesion share {share}");

    // Every disc says how its corners came about.
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let col = csv
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "source")
        .unwrap();
    for rec in csv.records() {
        let rec = rec.unwrap();
        assert!(
            ["hand", "corrected", "detected"].contains(&&rec[col]),
            "{:?}",
            rec
        );
    }

    // Every labelled disc's ROI can be cut (training and evaluation read all of them).
    let with_label: Vec<_> = rows.into_iter().filter(|r| r.label.is_some()).collect();
    let rois = endplate::manifest::rois(
        &with_label,
        path.parent().unwrap(),
        endplate::image::decode::DecodeOptions::default(),
        &endplate::RoiParams::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(rois.len(), labelled);
}

#[test]
fn the_auxiliary_columns_are_spiders_other_gradings_of_the_same_disc() {
    let Some(data) = spider() else { return };
    let (_, text, rows) = real_manifest();
    let column = |name: &str| {
        endplate::manifest::number_column(
            "manifest.csv",
            &text,
            name,
            |v| [0.0, 1.0].contains(&v),
            "0 or 1",
        )
        .unwrap()
        .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (up, low, modic, p3, p4, p5) = (
        column("up_endplate"),
        column("low_endplate"),
        column("modic"),
        column("pfirrmann_3plus"),
        column("pfirrmann_4plus"),
        column("pfirrmann_5"),
    );
    // SPIDER's row per (patient, level): up, low, Modic type, Pfirrmann grade.
    let spider: HashMap<_, _> = spider_gradings(&data)
        .into_iter()
        .map(|(k, rec)| {
            let pfirrmann: u8 = rec[9].parse().unwrap();
            (
                k,
                (&rec[3] == "1", &rec[4] == "1", &rec[2] != "0", pfirrmann),
            )
        })
        .collect();
    let mut checked = 0;
    for (i, r) in rows.iter().enumerate() {
        let patient = r.subject.strip_prefix("spider_").unwrap().to_string();
        let Some(&(u, l, m, p)) = spider.get(&(patient, r.level.unwrap())) else {
            assert_eq!(up[i], None, "row {}: a grading SPIDER does not have", i + 2);
            continue;
        };
        let b = |x: bool| Some(x as u8 as f64);
        assert_eq!(
            (up[i], low[i], modic[i], p3[i], p4[i], p5[i]),
            (b(u), b(l), b(m), b(p >= 3), b(p >= 4), b(p >= 5)),
            "row {} ({} {:?})",
            i + 2,
            r.subject,
            r.level
        );
        // The label is the two endplate gradings together.
        if let Some(label) = r.label {
            assert_eq!(label.is_lesion(), u || l, "row {}", i + 2);
        }
        checked += 1;
    }
    assert!(checked >= 990, "only {checked} discs graded");
}

/// The rows of one of `data/spider/`'s corner files.
fn corner_file(name: &str) -> Vec<endplate::manifest::Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/spider")
        .join(name);
    endplate::manifest::parse(name, &std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_blind_annotations_cover_the_detectors_held_out_slices_and_place_the_same_discs() {
    let Some(_) = spider() else { return };
    use std::collections::BTreeSet;
    let subjects = |rows: &[endplate::manifest::Row]| -> BTreeSet<String> {
        rows.iter().map(|r| r.subject.clone()).collect()
    };
    // Exactly the detector's test and validation patients, none it learnt from.
    let mut held_out = subjects(&corner_file("corners-heldout.csv"));
    held_out.extend(subjects(&corner_file("detector-validate.csv")));
    let trained = subjects(&corner_file("detector-train.csv"));
    let (_, _, ours) = real_manifest();
    for (file, discs) in [
        ("corners-second.csv", 148),
        ("corners-third.csv", 148),
        ("corners-consensus.csv", 141),
    ] {
        let rows = corner_file(file);
        assert_eq!(subjects(&rows), held_out, "{file}");
        assert!(subjects(&rows).is_disjoint(&trained), "{file}");
        assert_eq!(rows.len(), discs, "{file}");
        assert!(
            rows.iter().all(|r| r.level.is_some() && r.label.is_none()),
            "{file}"
        );
        // The same discs as ours, placed independently: nearly every disc has one of ours
        // within half a width, and their corners differ by millimetres, neither nothing (a
        // copy) nor a disc's width (a swapped axis or a shifted level).
        let (matched, median) = agreement(&rows, &ours);
        assert!(
            matched + 8 >= rows.len(),
            "{file}: {matched} discs match ours"
        );
        assert!((1.0..6.0).contains(&median), "{file}: median {median} px");
    }
}

/// How many discs of `rows` have one of `ours` on the same image within half a width, and the
/// median distance from each of their corners to the nearest corner of that disc (pixels).
fn agreement(rows: &[endplate::manifest::Row], ours: &[endplate::manifest::Row]) -> (usize, f64) {
    use endplate::disc::geometry::centre;
    let (mut matched, mut distances) = (0, Vec::new());
    for r in rows {
        let c = centre(&r.corners);
        let off = |o: &endplate::manifest::Row| centre(&o.corners).distance(c);
        let nearest = ours
            .iter()
            .filter(|o| o.image == r.image)
            .min_by(|a, b| off(a).total_cmp(&off(b)))
            .unwrap();
        if off(nearest) <= r.corners[0].distance(r.corners[1]) / 2.0 {
            matched += 1;
            distances.extend(r.corners.iter().map(|p| {
                nearest
                    .corners
                    .iter()
                    .map(|q| p.distance(*q))
                    .fold(f64::MAX, f64::min)
            }));
        }
    }
    distances.sort_by(f64::total_cmp);
    (matched, distances[distances.len() / 2])
}

/// `data/spider/thoracic.csv` (more training discs, never a test set): each row is a graded
/// disc above L1L2 of a slice of `manifest.csv`, labelled with SPIDER's grading of the level its
/// note names (`IVD label` 6 is T12/L1, counted from the bottom as the lumbar levels are), its
/// corners above that slice's L1L2 (the image's y grows downwards), and every ROI cuts.
#[test]
fn the_thoracic_discs_carry_spiders_grading_of_their_level_and_lie_above_l1l2() {
    let Some(data) = spider() else { return };
    let mut grades: HashMap<(String, usize), bool> = HashMap::new();
    let mut reader = csv::Reader::from_path(data.join("radiological_gradings.csv")).unwrap();
    for rec in reader.records().map(Result::unwrap) {
        let ivd: usize = rec[1].parse().unwrap();
        grades.insert((rec[0].to_string(), ivd), &rec[3] == "1" || &rec[4] == "1");
    }
    let (_, _, lumbar) = real_manifest();
    let top_of_l1l2: HashMap<&str, f64> = lumbar
        .iter()
        .filter(|r| r.level == Some(endplate::Level::L1L2))
        .map(|r| {
            (
                r.image.as_str(),
                r.corners.iter().map(|c| c.y).fold(f64::MAX, f64::min),
            )
        })
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/spider/thoracic.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows = endplate::manifest::parse("thoracic.csv", &text).unwrap();
    let notes: Vec<String> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap()[15].to_string())
        .collect();
    let (mut lesions, mut levels) = (0, std::collections::BTreeSet::new());
    for (r, note) in rows.iter().zip(&notes) {
        let ivd: usize = note
            .split("IVD label ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{}: no IVD label in the note {note:?}", r.image));
        assert!((6..=9).contains(&ivd), "{note}");
        assert_eq!(
            r.level, None,
            "{}: the level column takes L1L2-L5S1 only",
            r.image
        );
        let patient = r.subject.strip_prefix("spider_").unwrap().to_string();
        let label = r.label.expect("every thoracic disc is labelled");
        assert_eq!(
            label.is_lesion(),
            grades[&(patient, ivd)],
            "{} {note}",
            r.image
        );
        let lowest = r.corners.iter().map(|c| c.y).fold(f64::MIN, f64::max);
        assert!(
            lowest < top_of_l1l2[r.image.as_str()],
            "{} {note}: not above L1L2",
            r.image
        );
        lesions += label.is_lesion() as usize;
        levels.insert(ivd);
    }
    assert!(rows.len() >= 350, "only {} thoracic discs", rows.len());
    assert_eq!(levels.into_iter().collect::<Vec<_>>(), [6, 7, 8, 9]);
    let share = lesions as f64 / rows.len() as f64;
    assert!((0.3..0.55).contains(&share), "lesion share {share}");
    let rois = endplate::manifest::rois(
        &rows,
        path.parent().unwrap(),
        endplate::image::decode::DecodeOptions::default(),
        &endplate::RoiParams::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(rois.len(), rows.len());
}
