//! `endplate adapt`: refit a model's last layer to a manifest's labelled discs, with the
//! held-out check, and write the adapted model. The work is `endplate::adapt::adapt`, the same
//! function the page's Adapt button runs; this file reads the discs and prints.

use crate::common::{model_path, rois, threads_or_all};
use clap::Args;
use endplate::adapt::{adapt, Example};
use endplate::model::adapt::{FitOptions, MIN_PER_LABEL};
use endplate::{manifest, Classifier, Error, Result};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct AdaptArgs {
    /// Model to adapt (ONNX with its card and the `features` output); default: the bundled model
    #[arg(long)]
    model: Option<PathBuf>,
    /// Labelled discs: a manifest CSV whose labels are the four classes (normal, wavy, notched,
    /// schmorl) and/or normal/lesion; rows without a label are skipped. At least
    /// 8 discs of every label used, from several subjects: whole subjects are held out
    #[arg(long)]
    manifest: PathBuf,
    /// Where to write the adapted model
    #[arg(long)]
    out: PathBuf,
    /// Machine-readable output: the report (held-out figures before and after, per held-out disc)
    #[arg(long)]
    json: bool,
    /// How hard the refit is pulled towards the base model's last layer
    #[arg(long, default_value_t = FitOptions::default().lambda)]
    lambda: f64,
    /// Frame of multi-frame DICOM images (0-based; default: the middle frame)
    #[arg(long)]
    frame: Option<u32>,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock (days to civil date, H. Hinnant).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

pub fn run(a: AdaptArgs) -> Result<()> {
    endplate::model::inference::set_threads(threads_or_all(a.threads));
    let path = model_path(a.model.as_deref())?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let name = path.display().to_string();
    let model = Classifier::from_bytes(&name, &bytes)?;
    if model.features_width().is_none() {
        return Err(endplate::model::last_layer::no_features(&name));
    }
    let m = &a.manifest;
    let text = std::fs::read_to_string(m).map_err(|e| Error::io(m, e))?;
    let mut rows = manifest::parse(&m.display().to_string(), &text)?;
    let all = rows.len();
    rows.retain(|r| r.label.is_some());
    if rows.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: none of its {all} rows has a label: adaptation needs labelled discs (column \
             `label`: normal, wavy, notched, schmorl or lesion), at least {MIN_PER_LABEL} of \
             each label used",
            m.display()
        )));
    }
    let base = m.parent().unwrap_or(Path::new(""));
    let p = model.card().preprocessing.clone();
    eprintln!(
        "{} labelled discs ({} rows without a label skipped): computing their features",
        rows.len(),
        all - rows.len()
    );
    let features = model.features(&rois(&rows, base, a.frame, &p)?)?;
    let examples: Vec<Example> = rows
        .iter()
        .zip(features)
        .map(|(r, features)| Example {
            // A row without a subject is its own image's subject.
            subject: if r.subject.is_empty() {
                r.image.clone()
            } else {
                r.subject.clone()
            },
            name: format!("{} {}", r.image, r.level.map_or("", |l| l.id())),
            label: r.label.expect("kept rows have a label"),
            features,
        })
        .collect();
    let options = FitOptions {
        lambda: a.lambda,
        ..FitOptions::default()
    };
    let adapted = adapt(&name, &bytes, &examples, &today(), options)?;
    endplate::files::write_atomic(&a.out, &adapted.bytes)?;
    let r = &adapted.report;
    if a.json {
        let mut v = serde_json::to_value(r).map_err(|e| Error::Invalid(e.to_string()))?;
        v["out"] = a.out.display().to_string().into();
        v["model"] = endplate::model::card::summary(&adapted.card);
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Invalid(e.to_string()))?
        );
    } else {
        println!(
            "fitted on {} discs of {} subjects {:?}; held out {} discs of {} subjects {:?}",
            r.fit.values().sum::<usize>(),
            r.subjects[0],
            r.fit,
            r.discs.len(),
            r.subjects[1],
            r.held_out
        );
        println!("{}", r.summary);
        println!("wrote {}", a.out.display());
    }
    Ok(())
}
