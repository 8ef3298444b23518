//! `endplate evaluate`: the paper's Table 3 for a model on a labelled manifest, and the printed
//! table that `train` shows too.

use crate::common::{load_model, rois, threads_or_all};
use clap::Args;
use endplate::manifest;
use endplate::{Class, Error, Result};
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

pub fn print_table3(m: &serde_json::Value) {
    let pct = |v: &serde_json::Value| {
        format!(
            "{:5.1} ({:5.1}-{:5.1})",
            100.0 * v["mean"].as_f64().unwrap_or(f64::NAN),
            100.0 * v["lo"].as_f64().unwrap_or(f64::NAN),
            100.0 * v["hi"].as_f64().unwrap_or(f64::NAN)
        )
    };
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
    let rows = manifest::parse(&name, &text)?;
    if let Some(i) = rows.iter().position(|r| r.label.is_none()) {
        return Err(Error::Manifest {
            file: name,
            row: i + 2,
            field: "label".into(),
            reason: "empty: evaluation needs a label on every row".into(),
        });
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
    let truth: Vec<Class> = rows.iter().map(|r| r.label.expect("checked")).collect();
    let metrics = endplate::eval::metrics::evaluate(&truth, &probs, a.bootstrap, a.seed);
    if let Some(dir) = &a.report {
        endplate::eval::report::write(dir, &metrics, &truth, &probs, &[])?;
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
