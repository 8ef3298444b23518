//! What several commands share: the `--image/--corners` disc arguments, reading discs from them
//! or from a manifest, finding and loading the model, the thread count.

use clap::Args;
use endplate::image::decode::DecodeOptions;
use endplate::manifest::{self, Row};
use endplate::{Classifier, Error, Level, Point, Result, Roi, RoiParams};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct DiscArgs {
    /// Slice image: DICOM, PNG (8/16-bit) or JPEG
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// The four endplate corners in pixels, any order: x1,y1,x2,y2,x3,y3,x4,y4
    #[arg(long, allow_hyphen_values = true)]
    pub corners: Option<String>,
    /// Frame of a multi-frame DICOM (0-based; default: the middle frame)
    #[arg(long)]
    pub frame: Option<u32>,
}

fn parse_corners(s: &str) -> Result<[Point; 4]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|t| t.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::Corners(format!(
                "--corners `{s}`: {e}; give eight numbers x1,y1,...,x4,y4"
            ))
        })?;
    if v.len() != 8 {
        return Err(Error::Corners(format!(
            "--corners needs eight numbers x1,y1,...,x4,y4, got {}",
            v.len()
        )));
    }
    Ok(std::array::from_fn(|i| Point::new(v[2 * i], v[2 * i + 1])))
}

/// A bundled model file beside the sources (a development checkout) or beside the binary.
fn bundled(file: &str, flag: &str) -> Result<PathBuf> {
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(file),
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join(file)))
            .unwrap_or_default(),
    ];
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::Invalid(format!(
            "no bundled model found (models/{file}): pass {flag} FILE.onnx"
        ))
    })
}

fn default_model() -> Result<PathBuf> {
    bundled("endplate-default.onnx", "--model")
}

/// The detector file, or the bundled one.
/// The given detector file, or the bundled one.
pub fn detector_path(path: Option<&Path>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => bundled("endplate-detector.onnx", "--detector"),
    }
}

pub fn load_detector(path: Option<&Path>) -> Result<endplate::model::detector::Detector> {
    let path = detector_path(path)?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    endplate::model::detector::Detector::from_bytes(&path.display().to_string(), &bytes)
}

/// The given model file, or the bundled one.
pub fn model_path(path: Option<&Path>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => default_model(),
    }
}

pub fn load_model(path: Option<&Path>) -> Result<Classifier> {
    let path = model_path(path)?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Classifier::from_bytes(&path.display().to_string(), &bytes)
}

/// The single `--image/--corners` disc (manifests are read by the commands themselves).
pub fn discs(disc: &DiscArgs, level: Option<&str>) -> Result<(Vec<Row>, PathBuf)> {
    let (Some(image), Some(corners)) = (&disc.image, &disc.corners) else {
        return Err(Error::Invalid(
            "give --image and --corners for one disc, or --manifest CSV".into(),
        ));
    };
    let level = level.map(str::parse::<Level>).transpose()?;
    let row = Row {
        image: image.display().to_string(),
        subject: String::new(),
        level,
        label: None,
        corners: parse_corners(corners)?,
    };
    Ok((vec![row], PathBuf::new()))
}

/// Decode every distinct image once and cut the ROIs of all its discs.
pub fn rois(rows: &[Row], base: &Path, frame: Option<u32>, p: &RoiParams) -> Result<Vec<Roi>> {
    manifest::rois(rows, base, DecodeOptions { frame }, p, |_| ())
}

/// The asked thread count, or every core.
pub fn threads_or_all(asked: Option<usize>) -> usize {
    asked
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1)
}

/// The slice `--series` chose: its study name, bytes and a JSON note of the choice.
pub struct Picked {
    pub name: String,
    pub bytes: Vec<u8>,
    pub note: serde_json::Value,
}

/// `--series PATH [--slice N]`: read the folder, zip or DICOMDIR as a study, take the proposed
/// sagittal T2 series and its mid-sagittal slice (or slice N), say on standard error what was
/// taken and skipped, and return the slice's bytes with a JSON note of the choice (series,
/// slice index, file, spacing).
pub fn pick_from_series(path: &Path, slice: Option<usize>) -> Result<Picked> {
    let (study, mut sources) = endplate::study::open(path)?;
    const SHOWN: usize = 20;
    for s in study.skipped.iter().take(SHOWN) {
        eprintln!("skipped {}: {}", s.name, s.reason);
    }
    if study.skipped.len() > SHOWN {
        eprintln!("... and {} more files skipped", study.skipped.len() - SHOWN);
    }
    for d in &study.dicomdirs {
        eprintln!(
            "{}: lists {} files, {} of them missing{}",
            d.name,
            d.listed,
            d.missing.len(),
            d.missing
                .first()
                .map(|m| format!(" (first: {m})"))
                .unwrap_or_default()
        );
    }
    if study.series.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no DICOM image series found ({} files skipped)",
            path.display(),
            study.skipped.len()
        )));
    }
    let pick = study.pick(None, slice)?;
    let s = pick.series;
    eprintln!(
        "series {:?} ({} slices, {:?}, ordered by {}); slice {} of {} ({}): {}",
        s.description,
        s.slices.len(),
        s.plane,
        s.ordered_by,
        pick.slice,
        s.slices.len(),
        if slice.is_some() {
            "asked"
        } else {
            "mid-sagittal"
        },
        pick.file
    );
    let note = serde_json::json!({
        "series_uid": s.uid,
        "series_description": s.description,
        "slice": pick.slice,
        "slices": s.slices.len(),
        "chosen": if slice.is_some() { "asked" } else { "mid-sagittal" },
        "file": pick.file,
        "spacing_mm": s.spacing_mm,
        "skipped": study.skipped.len(),
        "missing": study.dicomdirs.iter().map(|d| d.missing.len()).sum::<usize>(),
    });
    let name = pick.file.to_string();
    let bytes = sources.read(&name)?;
    Ok(Picked { name, bytes, note })
}
