//! `detect`, `evaluate-detector` and `train-detector`: the disc detector on the command line.

use super::common::{load_detector, threads_or_all};
use clap::Args;
use endplate::disc::detection::DetectedDisc;
use endplate::eval::detection::{evaluate, read_truth, DetectionReport, SliceTruth};
use endplate::eval::metrics::Estimate;
use endplate::image::decode::{decode, decode_file, DecodeOptions};
use endplate::manifest::{self, Row};
use endplate::model::detector::{Detection, Detector};
use endplate::{Error, Result, Slice};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct DetectArgs {
    /// Slice image: DICOM, PNG (8/16-bit) or JPEG
    #[arg(long, required_unless_present = "series", conflicts_with = "series")]
    pub image: Option<PathBuf>,
    /// A study: a folder of DICOM files (any names, subfolders too), a zip of one, or its
    /// DICOMDIR; detect on the proposed sagittal T2 series' mid-sagittal slice
    #[arg(long)]
    pub series: Option<PathBuf>,
    /// With --series: this slice (0-based, along the series' normal) instead of the middle one
    #[arg(long, requires = "series")]
    pub slice: Option<usize>,
    /// Frame of a multi-frame DICOM (0-based; default: the middle frame)
    #[arg(long)]
    pub frame: Option<u32>,
    /// Detector file (ONNX with its card, kind "detector"); default: the bundled detector
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Machine-readable output (SPEC.md's `detect --json`)
    #[arg(long)]
    pub json: bool,
    /// Also write the lumbar discs found as manifest rows (empty label) to this CSV
    #[arg(long)]
    pub manifest_out: Option<PathBuf>,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run_detect(a: DetectArgs) -> Result<()> {
    endplate::model::inference::set_threads(threads_or_all(a.threads));
    let (image, bytes, picked) = match (&a.image, &a.series) {
        (_, Some(dir)) => {
            let p = crate::common::pick_from_series(dir, a.slice)?;
            (p.name, p.bytes, Some(p.note))
        }
        (Some(image), None) => (
            image.display().to_string(),
            std::fs::read(image).map_err(|e| Error::io(image, e))?,
            None,
        ),
        (None, None) => return Err(Error::Invalid("give --image FILE or --series DIR".into())),
    };
    let detector = load_detector(a.detector.as_deref())?;
    let slice = decode(&bytes, &image, DecodeOptions { frame: a.frame })?;
    let (found, ms) = detect_slice(&detector, &slice, &image)?;
    let discs = &found.discs;
    if a.json {
        let mut out = serde_json::json!({
            "image": image,
            "model": detector.card().summary(),
            "discs": discs,
            "upside_down": found.upside_down,
            "milliseconds": ms,
        });
        if let Some(w) = endplate::image::orientation::warning(slice.orientation) {
            out["warning"] = w.into();
        }
        if let Some(note) = picked {
            out["series"] = note;
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "{:<7} {:>5}  corners (x, y): upper endplate, lower endplate",
            "level", "score"
        );
        for d in discs {
            let c: Vec<String> = d
                .corners
                .iter()
                .map(|p| format!("({:.1}, {:.1})", p.x, p.y))
                .collect();
            println!(
                "{:<7} {:>5.2}  {}",
                d.level.as_deref().unwrap_or("?"),
                d.score,
                c.join(" ")
            );
        }
    }
    if let Some(out) = &a.manifest_out {
        let rows = lumbar_rows(discs, &image);
        endplate::files::write_atomic(out, manifest::write(&rows, &[], &[]).as_bytes())?;
        eprintln!("wrote {} rows to {}", rows.len(), out.display());
    }
    Ok(())
}

/// Decode `path`, find its discs and say on standard error what was found and how long it took
/// (`detect`, and `classify` wherever corners are missing). Returns the slice too, so the
/// caller cuts its ROIs without decoding the file again.
pub fn detect_file(
    detector: &Detector,
    path: &Path,
    frame: Option<u32>,
) -> Result<(Detection, Slice, f64)> {
    let slice = decode_file(path, DecodeOptions { frame })?;
    let (found, ms) = detect_slice(detector, &slice, &path.display().to_string())?;
    Ok((found, slice, ms))
}

/// [`detect_file`] on a slice already decoded (a study's slice may live in a zip).
pub fn detect_slice(detector: &Detector, slice: &Slice, image: &str) -> Result<(Detection, f64)> {
    let start = Instant::now();
    let found = detector.detect_oriented(slice)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if let Some(w) = endplate::image::orientation::warning(slice.orientation) {
        eprintln!("note: {image}: {w}");
    }
    eprintln!("{}", summary_line(&found.discs, image, ms));
    if found.upside_down {
        eprintln!("{}", UPSIDE_DOWN);
    }
    Ok((found, ms))
}

/// What to tell a user whose slice the detector found stored upside down.
pub const UPSIDE_DOWN: &str = "  the slice is stored upside down (sacrum at the top): its discs were found on it turned upright, levels counted from the sacrum, corners given on the slice as stored";

/// What a user needs to hear about a detection, including when nothing usable was found.
pub fn summary_line(discs: &[DetectedDisc], image: &str, ms: f64) -> String {
    let lumbar = discs.iter().filter(|d| d.lumbar_level().is_some()).count();
    if discs.is_empty() {
        format!("{image}: no discs found ({ms:.0} ms). Is this a sagittal slice of the lumbar spine? Place corners by hand (--corners) if it is.")
    } else if discs.iter().all(|d| d.level.is_none()) {
        format!("{image}: {} discs found but no sacrum, so their levels cannot be named ({ms:.0} ms); give --corners and --level by hand", discs.len())
    } else {
        format!(
            "{image}: {} discs found, {lumbar} of them lumbar (L1L2-L5S1), in {ms:.0} ms",
            discs.len()
        )
    }
}

/// The lumbar discs as manifest rows (thoracic ones are not classified).
pub fn lumbar_rows(discs: &[DetectedDisc], image: &str) -> Vec<Row> {
    discs
        .iter()
        .filter_map(|d| {
            Some(Row {
                image: image.to_string(),
                subject: String::new(),
                level: Some(d.lumbar_level()?),
                label: None,
                corners: d.corners,
            })
        })
        .collect()
}

#[derive(Args)]
pub struct EvaluateDetectorArgs {
    /// Manifest CSV with levels and corners of the true discs (several allowed)
    #[arg(long, required = true)]
    pub manifest: Vec<PathBuf>,
    /// Detector file; default: the bundled detector
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Machine-readable output (the report with every disc)
    #[arg(long)]
    pub json: bool,
    /// Write one PNG per slice here: truth blue, detections green (right level), orange (wrong
    /// level), red (false disc)
    #[arg(long)]
    pub overlays: Option<PathBuf>,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Every slice of the manifests with its true discs.
pub fn truth_slices(manifests: &[PathBuf]) -> Result<Vec<(SliceTruth, endplate::Slice)>> {
    let mut out = Vec::new();
    for m in manifests {
        out.extend(read_truth(m, |_| ())?);
    }
    Ok(out)
}

pub fn print_report(r: &DetectionReport) {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    println!("{} slices, {} true lumbar discs", r.slices, r.overall.discs);
    println!(
        "{:<6} {:>5} {:>11} {:>11} {:>6}  {:>10} {:>8}  {:>10} {:>8}",
        "level",
        "discs",
        "right level",
        "wrong level",
        "missed",
        "median px",
        "p90 px",
        "median mm",
        "p90 mm"
    );
    for l in r.levels.iter().chain(std::iter::once(&r.overall)) {
        println!(
            "{:<6} {:>5} {:>5} ({:>3.0}%) {:>11} {:>6}  {:>10} {:>8}  {:>10} {:>8}",
            l.level,
            l.discs,
            l.right_level,
            100.0 * l.right_level_rate,
            l.wrong_level,
            l.missed,
            opt(l.corner_median_px),
            opt(l.corner_p90_px),
            opt(l.corner_median_mm),
            opt(l.corner_p90_mm)
        );
    }
    println!(
        "false discs: {} ({:.1} % of true discs)",
        r.false_discs,
        100.0 * r.false_rate
    );
    let i = &r.intervals;
    if i.subjects > 1 {
        let pct = |e: &Estimate| {
            format!(
                "{:.1} % ({:.1}–{:.1})",
                100.0 * e.point,
                100.0 * e.lo,
                100.0 * e.hi
            )
        };
        let mm = |e: &Option<Estimate>| {
            e.map(|e| format!("{:.2} mm ({:.2}–{:.2})", e.point, e.lo, e.hi))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "95 % intervals, bootstrap over {} subjects: right level {}, false discs {}, corner median {}, p90 {}",
            i.subjects,
            pct(&i.right_level_rate),
            pct(&i.false_rate),
            mm(&i.corner_median_mm),
            mm(&i.corner_p90_mm)
        );
    }
}

pub fn run_evaluate_detector(a: EvaluateDetectorArgs) -> Result<()> {
    endplate::model::inference::set_threads(threads_or_all(a.threads));
    let detector = load_detector(a.detector.as_deref())?;
    let slices = truth_slices(&a.manifest)?;
    let start = Instant::now();
    let report = evaluate(&detector, &slices)?;
    let ms = start.elapsed().as_secs_f64() * 1e3 / slices.len().max(1) as f64;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print_report(&report);
    }
    if let Some(dir) = &a.overlays {
        for ((_, slice), outcome) in slices.iter().zip(&report.per_slice) {
            crate::overlay::write(dir, slice, outcome)?;
        }
        eprintln!("wrote {} overlays to {}", slices.len(), dir.display());
    }
    eprintln!("{} slices, {ms:.1} ms per slice, every view", slices.len());
    Ok(())
}
