//! `endplate evaluate`: the paper's Table 3 for a model on a labelled manifest, and the printed
//! table that `train` shows too.

use crate::common::{load_model, rois, threads_or_all};
use clap::Args;
use endplate::manifest;
use endplate::{Class, Error, Label, Result};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model file (ONNX with its card); default: the bundled model
    #[arg(long)]
    model: Option<PathBuf>,
    /// Labelled manifest CSV
    #[arg(long)]
    manifest: PathBuf,
    /// Bootstrap resamples
    #[arg(long, default_value_t = 500)]
    bootstrap: usize,
    /// Bootstrap seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Machine-readable output (SPEC.md's `evaluate --json`)
    #[arg(long)]
    json: bool,
    /// Also write a report folder here: metrics.json, confusion.csv and SVG charts (confusion,
    /// one-vs-rest ROC, reliability)
    #[arg(long)]
    report: Option<PathBuf>,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

fn pct(v: &serde_json::Value) -> String {
    format!(
        "{:5.1} ({:5.1}-{:5.1})",
        100.0 * v["mean"].as_f64().unwrap_or(f64::NAN),
        100.0 * v["lo"].as_f64().unwrap_or(f64::NAN),
        100.0 * v["hi"].as_f64().unwrap_or(f64::NAN)
    )
}

/// Table 3 where the truth has the four classes, then lesion-vs-normal (SPEC.md).
pub fn print_table3(m: &serde_json::Value) {
    if m.get("accuracy").is_some() {
        print_four_class(m);
    } else {
        println!(
            "n = {} discs with binary labels (normal / lesion); Table 3 needs the lesion type",
            m["n"]
        );
    }
    let l = &m["lesion_vs_normal"];
    if l["auc"]["point"].as_f64().is_some_and(f64::is_finite) {
        println!(
            "lesion vs normal ({} lesion of {}, {} subjects; bootstrap over subjects):",
            l["lesions"], l["n"], l["subjects"]
        );
        println!(
            "  AUC of P(lesion) {}  at P(lesion) >= 0.5: sensitivity {}  specificity {}  accuracy {}",
            pct(&l["auc"]),
            pct(&l["sensitivity"]),
            pct(&l["specificity"]),
            pct(&l["accuracy"])
        );
    }
}

fn print_four_class(m: &serde_json::Value) {
    println!(
        "n = {} discs; bootstrap mean (95 % interval), percent",
        m["n"]
    );
    println!("overall accuracy     {}", pct(&m["accuracy"]));
    for c in Class::ALL {
        println!(
            "sensitivity {:<9}{}",
            c.id(),
            pct(&m["per_class"][c.id()]["sensitivity"])
        );
    }
    println!(
        "one-vs-rest, macro:  AUC {}  accuracy {}",
        pct(&m["auc"]),
        pct(&m["ovr_accuracy"])
    );
    println!(
        "                     precision {}  recall {}",
        pct(&m["precision"]),
        pct(&m["recall"])
    );
    println!(
        "                     specificity {}  F1 {}",
        pct(&m["specificity"]),
        pct(&m["f1"])
    );
    println!("confusion (rows truth, columns predicted; normal wavy notched schmorl):");
    if let Some(rows) = m["confusion"].as_array() {
        for (c, r) in Class::ALL.iter().zip(rows) {
            println!("  {:<8} {}", c.id(), r);
        }
    }
}

pub fn run(a: EvaluateArgs) -> Result<()> {
    let threads = threads_or_all(a.threads);
    endplate::model::inference::set_threads(threads);
    let model = load_model(a.model.as_deref())?;
    let text = std::fs::read_to_string(&a.manifest).map_err(|e| Error::io(&a.manifest, e))?;
    let name = a.manifest.display().to_string();
    let mut rows = manifest::parse(&name, &text)?;
    let total = rows.len();
    rows.retain(|r| r.label.is_some());
    if rows.is_empty() {
        return Err(Error::Manifest {
            file: name,
            row: 2,
            field: "label".into(),
            reason: "empty on every row: evaluation needs labelled discs (a class, or lesion)"
                .into(),
        });
    }
    if rows.len() < total {
        eprintln!(
            "{name}: {} of {total} rows have no label and are left out",
            total - rows.len()
        );
    }
    let base = a
        .manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let rois = rois(&rows, &base, None, &model.card().preprocessing)?;
    let mut probs = Vec::with_capacity(rows.len());
    for chunk in rois.chunks(16) {
        probs.extend(model.classify(chunk)?.into_iter().map(|p| p.probabilities));
    }
    let truth: Vec<Label> = rows.iter().map(|r| r.label.expect("checked")).collect();
    let subjects: Vec<String> = rows.iter().map(|r| r.subject.clone()).collect();
    let metrics =
        endplate::eval::labelled::evaluate_labelled(&truth, &probs, &subjects, a.bootstrap, a.seed);
    if let Some(dir) = &a.report {
        endplate::eval::report::write_labelled(dir, &metrics, &truth, &probs, &[])?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&metrics).expect("json"));
    } else {
        if let Some(w) = model.card().display_warning() {
            eprintln!("note: {w}");
        }
        print_table3(&metrics);
    }
    Ok(())
}
