//! Writes a small DICOM study for the page's browser test (tests/browser/study.test.mjs), so no
//! binary fixture is committed: a sagittal T2 series whose slices are phantom spines (the disc
//! detector finds their discs), a sagittal T1 and an axial series of small flat slices, a text
//! file, file names shuffled across two folders.
//!
//! Usage: write_study OUT_DIR [--zip FILE.zip] [--seed N]   (with --zip, the same files zipped
//! as well; the default seed's five slices all get their five lumbar discs from the bundled
//! detector)
//! Prints a JSON line: the T2 series' file names in slice order, its mid slice, the spacing and
//! the slices' size (width, height).

#[allow(dead_code)]
#[path = "../tests/common/dicom.rs"]
mod dicom;
#[allow(dead_code)]
#[path = "../tests/common/study.rs"]
mod study;

use endplate::phantom::{plan_subject, render, ClassMix};
use study::{slice_file, zip, Image, SeriesSpec, AXIAL, SAGITTAL};

/// Slices of the sagittal T2 series; positions -8 ... 8 mm, so the middle one is index 2.
const T2_SLICES: usize = 5;
const SEED: u64 = 1;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: write_study OUT_DIR [--zip FILE.zip]");
        std::process::exit(2);
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let zip_to = flag("--zip");
    let seed: u64 = flag("--seed").map_or(SEED, |s| s.parse().expect("--seed takes a number"));
    let t2 = SeriesSpec {
        uid: "1.2.826.0.1.3680043.10.1",
        number: 4,
        description: "SAG T2 TSE",
        orientation: Some(SAGITTAL),
        te: 108.0,
        tr: 3600.0,
    };
    let t1 = SeriesSpec {
        uid: "1.2.826.0.1.3680043.10.2",
        number: 3,
        description: "SAG T1 TSE",
        orientation: Some(SAGITTAL),
        te: 9.0,
        tr: 520.0,
    };
    let axial = SeriesSpec {
        uid: "1.2.826.0.1.3680043.10.3",
        number: 5,
        description: "AX T2 L4-S1",
        orientation: Some(AXIAL),
        te: 100.0,
        tr: 4200.0,
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut counter = 0u32;
    let mut next_name = |folder: &str| {
        counter += 1;
        format!("{folder}IM{:04}", (counter * 7919) % 10_000)
    };
    // One phantom subject; each slice redraws its anatomy and noise from another seed, at the
    // same size and spacing, as neighbouring slices of one series are.
    let plan = plan_subject(seed, 0, ClassMix::Paper, 16);
    let spacing = plan.spacing_mm;
    let size = [plan.width, plan.height];
    let mut t2_names = Vec::new();
    for k in 0..T2_SLICES {
        let mut p = plan.clone();
        p.seed = plan.seed.wrapping_add(k as u64);
        let ph = render(&p);
        let pixels = ph
            .slice
            .pixels
            .iter()
            .map(|v| v.round().clamp(0.0, 65535.0) as u16)
            .collect();
        let image = Image {
            rows: ph.slice.height as u16,
            cols: ph.slice.width as u16,
            pixels,
            spacing_mm: (spacing, spacing),
        };
        let x = -8.0 + 4.0 * k as f64;
        // Instance numbers backwards: only positions give the order.
        let bytes = slice_file(
            &t2,
            k,
            (T2_SLICES - k) as i32,
            Some([x, -120.0, 80.0]),
            image,
        );
        let name = next_name(if k % 2 == 0 { "" } else { "b/" });
        t2_names.push(name.clone());
        files.push((name, bytes));
    }
    for k in 0..3 {
        let bytes = slice_file(
            &t1,
            k,
            k as i32 + 1,
            Some([-4.0 + 4.0 * k as f64, -120.0, 80.0]),
            flat(64, 2000),
        );
        files.push((next_name(""), bytes));
    }
    for k in 0..4 {
        let bytes = slice_file(
            &axial,
            k,
            k as i32 + 1,
            Some([-100.0, -100.0, 4.0 * k as f64]),
            flat(64, 3000),
        );
        files.push((next_name("b/"), bytes));
    }
    files.push((
        "notes.txt".into(),
        b"Study exported for endplate's browser test\n".to_vec(),
    ));
    for (name, bytes) in &files {
        let path = std::path::Path::new(out).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    if let Some(z) = zip_to {
        std::fs::write(z, zip(&files)).unwrap();
    }
    println!(
        "{}",
        serde_json::json!({
            "t2": t2_names,
            "mid": T2_SLICES / 2,
            "spacing_mm": spacing,
            "size": size,
            "files": files.len(),
        })
    );
}

fn flat(side: u16, value: u16) -> Image {
    Image {
        rows: side,
        cols: side,
        pixels: vec![value; side as usize * side as usize],
        spacing_mm: (0.8, 0.8),
    }
}
