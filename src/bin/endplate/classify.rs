//! `endplate classify`: one disc or a whole manifest, as a table or SPEC.md's JSON, with the
//! throughput on standard error.

use crate::common::{discs, load_model, threads_or_all, DiscArgs};
use clap::Args;
use endplate::image::decode::{decode, decode_file, DecodeOptions};
use endplate::manifest::{self, Entry, Row};
use endplate::{Class, Error, Prediction, Result, Roi, RoiParams, Slice};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    disc: DiscArgs,
    /// Level of the single disc (L1L2 ... L5S1), echoed in the output
    #[arg(long)]
    level: Option<String>,
    /// Manifest CSV (image,subject,level,label,x1,...,y4): classify every row. A row whose eight
    /// corner cells are empty is detected: its level's disc, or every lumbar disc of the image
    /// when the level is empty too
    #[arg(long, conflicts_with_all = ["image", "corners"])]
    manifest: Option<PathBuf>,
    /// A study: a folder of DICOM files (any names, subfolders too), a zip of one, or its
    /// DICOMDIR; classify the proposed sagittal T2 series' mid-sagittal slice (every lumbar disc
    /// found, or the disc of --corners)
    #[arg(long, conflicts_with_all = ["image", "manifest"])]
    series: Option<PathBuf>,
    /// With --series: this slice (0-based, in the series' order along its normal) instead of
    /// the mid-sagittal one
    #[arg(long, requires = "series")]
    slice: Option<usize>,
    /// Model file (ONNX with its card); default: the bundled model
    #[arg(long)]
    model: Option<PathBuf>,
    /// Detector file for `--image` without `--corners`; default: the bundled detector
    #[arg(long)]
    detector: Option<PathBuf>,
    /// Machine-readable output (SPEC.md's `classify --json`)
    #[arg(long)]
    json: bool,
    /// Discs per network run
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Write each disc's evidence map (occlusion sensitivity: where hiding the disc lowers the
    /// predicted class's probability, yellow to red over the ROI) as a PNG into this folder
    #[arg(long)]
    evidence: Option<PathBuf>,
}

/// Write one occlusion map per disc into `dir`: `NNN-<image>-<level>-<class>.png`, the ROI in
/// gray with the map blended over it, and one line per map on standard error.
fn write_evidence(
    dir: &Path,
    model: &endplate::Classifier,
    rows: &[Row],
    rois: &[endplate::Roi],
) -> Result<()> {
    use endplate::model::evidence::{occlusion, PATCH, STRIDE};
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    eprintln!(
        "evidence: occlusion with a {PATCH}-pixel gray patch every {STRIDE} pixels of the ROI; \
         colour = fall of the predicted class's probability, yellow (small) to red (the map's largest)"
    );
    for (i, (r, roi)) in rows.iter().zip(rois).enumerate() {
        let e = occlusion(model, roi)?;
        let stem = Path::new(&r.image)
            .file_stem()
            .map(|s| {
                s.to_string_lossy().replace(
                    |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                    "_",
                )
            })
            .unwrap_or_default();
        let level = r.level.map(|l| l.id()).unwrap_or("disc");
        let path = dir.join(format!("{i:03}-{stem}-{level}-{}.png", e.class.id()));
        let n = e.size as u32;
        image::RgbImage::from_raw(n, n, e.over_roi_rgb(roi))
            .expect("size matches")
            .save(&path)
            .map_err(|err| Error::Invalid(format!("{}: {err}", path.display())))?;
        eprintln!(
            "{}: {} p={:.3}, red = a fall of {:.3} ({} runs)",
            path.display(),
            e.class.display_name(),
            e.probability,
            e.scale(),
            e.runs
        );
    }
    Ok(())
}

/// The rows of a manifest, in order, with the discs of rows without corners found by the
/// detector (loaded only when such a row exists; each image decoded and detected once). A level
/// the detector does not find is reported and left out. Also the images the detector found
/// stored upside down, whose discs' ROIs are to be cut turned upright.
fn manifest_rows(
    m: &Path,
    detector: Option<&Path>,
    frame: Option<u32>,
) -> Result<(Vec<Row>, PathBuf, HashSet<String>)> {
    let text = std::fs::read_to_string(m).map_err(|e| Error::io(m, e))?;
    let name = m.display().to_string();
    let base = m.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut found: HashMap<String, Vec<Row>> = HashMap::new();
    let mut turned = HashSet::new();
    let mut det = None;
    let mut rows = Vec::new();
    for entry in manifest::parse_entries(&name, &text)? {
        let want = match entry {
            Entry::Disc(r) => {
                rows.push(r);
                continue;
            }
            Entry::Detect(w) => w,
        };
        if !found.contains_key(&want.image) {
            let detector = match &det {
                Some(d) => d,
                None => det.insert(crate::common::load_detector(detector)?),
            };
            let (detection, _, _) =
                crate::detect::detect_file(detector, &base.join(&want.image), frame)?;
            if detection.upside_down {
                turned.insert(want.image.clone());
            }
            found.insert(
                want.image.clone(),
                crate::detect::lumbar_rows(&detection.discs, &want.image),
            );
        }
        let picked: Vec<Row> = found[&want.image]
            .iter()
            .filter(|r| want.level.is_none() || r.level == want.level)
            .map(|r| Row {
                subject: want.subject.clone(),
                label: want.label,
                ..r.clone()
            })
            .collect();
        if picked.is_empty() {
            eprintln!(
                "{name}, row {}: no {} disc detected in {}; left out",
                want.line,
                want.level.map_or("lumbar".to_string(), |l| l.to_string()),
                want.image
            );
        }
        rows.extend(picked);
    }
    Ok((rows, base, turned))
}

/// The discs of one decoded slice and their ROIs: the `given` rows, or without them the lumbar
/// discs the detector finds on the slice.
fn slice_discs(
    slice: &Slice,
    name: &str,
    given: Option<Vec<Row>>,
    detector: Option<&Path>,
    p: &RoiParams,
) -> Result<(Vec<Row>, Vec<Roi>)> {
    let (rows, upside_down) = match given {
        Some(rows) => (rows, false),
        None => {
            let detector = crate::common::load_detector(detector)?;
            let (found, _) = crate::detect::detect_slice(&detector, slice, name)?;
            (
                crate::detect::lumbar_rows(&found.discs, name),
                found.upside_down,
            )
        }
    };
    let corners: Vec<_> = rows.iter().map(|r| r.corners).collect();
    let rois = if upside_down {
        Roi::extract_turned(slice, &corners, p)?
    } else {
        Roi::extract_many(slice, &corners, p)?
    };
    Ok((rows, rois))
}

pub fn run(mut a: ClassifyArgs) -> Result<()> {
    let picked = match &a.series {
        Some(path) => Some(crate::common::pick_from_series(path, a.slice)?),
        None => None,
    };
    let threads = threads_or_all(a.threads);
    endplate::model::inference::set_threads(threads);
    let model = load_model(a.model.as_deref())?;
    let p = &model.card().preprocessing;
    let (rows, rois) = match (&picked, &a.disc.image, &a.disc.corners, &a.manifest) {
        // A study's slice (it may live in a zip): decoded here, its discs those of --corners or
        // the detector's.
        (Some(picked), ..) => {
            let slice = decode(
                &picked.bytes,
                &picked.name,
                DecodeOptions {
                    frame: a.disc.frame,
                },
            )?;
            let given = match &a.disc.corners {
                Some(_) => {
                    a.disc.image = Some(PathBuf::from(&picked.name));
                    Some(discs(&a.disc, a.level.as_deref())?.0)
                }
                None => None,
            };
            slice_discs(&slice, &picked.name, given, a.detector.as_deref(), p)?
        }
        // No corners: the detector finds every lumbar disc of the slice.
        (None, Some(image), None, None) => {
            let slice = decode_file(
                image,
                DecodeOptions {
                    frame: a.disc.frame,
                },
            )?;
            let name = image.display().to_string();
            slice_discs(&slice, &name, None, a.detector.as_deref(), p)?
        }
        _ => {
            let (rows, base, turned) = match &a.manifest {
                Some(m) => manifest_rows(m, a.detector.as_deref(), a.disc.frame)?,
                None => {
                    let (rows, base) = discs(&a.disc, a.level.as_deref())?;
                    (rows, base, HashSet::new())
                }
            };
            let options = DecodeOptions {
                frame: a.disc.frame,
            };
            let rois =
                manifest::rois_turning(&rows, &base, options, p, |_| (), |i| turned.contains(i))?;
            (rows, rois)
        }
    };
    let start = Instant::now();
    let mut preds: Vec<Prediction> = Vec::with_capacity(rows.len());
    for chunk in rois.chunks(a.batch.max(1)) {
        preds.extend(model.classify(chunk)?);
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(dir) = &a.evidence {
        write_evidence(dir, &model, &rows, &rois)?;
    }

    if a.json {
        let results: Vec<_> = rows
            .iter()
            .zip(&preds)
            .map(|(r, p)| {
                serde_json::json!({
                    "image": r.image,
                    "level": r.level.map(|l| l.id()),
                    "label": p.class.id(),
                    "truth": r.label.map(|c| c.id()),
                    "probabilities": Class::ALL.iter().map(|c| (c.id().to_string(), serde_json::json!(p.probabilities[c.index()]))).collect::<serde_json::Map<_, _>>(),
                    "logits": p.logits,
                    "corners": r.corners.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut out = serde_json::json!({ "model": endplate::model::card::summary(model.card()), "results": results });
        if let Some(picked) = picked {
            out["series"] = picked.note;
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        if let Some(w) = model.card().display_warning() {
            eprintln!("note: {w}");
        }
        println!(
            "{:<28} {:<5} {:<15} {:>7} {:>7} {:>8} {:>8}  truth",
            "image", "level", "class", "normal", "wavy", "notched", "schmorl"
        );
        for (r, p) in rows.iter().zip(&preds) {
            let name = if r.image.len() > 28 {
                &r.image[r.image.len() - 28..]
            } else {
                &r.image
            };
            let pr = p.probabilities;
            println!(
                "{:<28} {:<5} {:<15} {:>7.3} {:>7.3} {:>8.3} {:>8.3}  {}",
                name,
                r.level.map(|l| l.id()).unwrap_or("-"),
                p.class.display_name(),
                pr[0],
                pr[1],
                pr[2],
                pr[3],
                r.label.map(|c| c.id()).unwrap_or("")
            );
        }
    }
    eprintln!(
        "{} discs in {:.2} s ({:.1} discs/s, {} thread{}, batch {})",
        rows.len(),
        secs,
        rows.len() as f64 / secs,
        threads,
        if threads == 1 { "" } else { "s" },
        a.batch
    );
    Ok(())
}
