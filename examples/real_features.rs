//! Features of every labelled disc of a manifest, for the logistic baselines that an image model
//! must beat (`bench/real_baselines.py`): one CSV row per disc with its subject, level, binary
//! truth (1 = lesion) and the ROI downsampled to 32x32 or, given a model, that model's frozen
//! pooled features (its `features` output; `examples/expose_features` adds it to an older file).
//!
//! cargo build --all-targets --features train
//! target/debug/examples/real_features data/spider/manifest.csv target/real_features.csv [MODEL]
//! (or `bench/real_experiments.sh baselines`, which runs this and the baselines)
//!
//! `VERTEBRA_FRACTION=0.6` cuts ROIs that show more of each adjacent vertebral body than the
//! model card's 0.30 (SPEC.md), to ask cheaply whether more context carries more of the label:
//! `python3 bench/real_baselines.py --pixels-only OUT.csv` then scores the raw pixels alone.

#[path = "common/pooled.rs"]
mod pooled;

use endplate::image::decode::DecodeOptions;
use endplate::RoiParams;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (manifest, out, model) = match &args[..] {
        [m, o] => (Path::new(m), Path::new(o), None),
        [m, o, model] => (Path::new(m), Path::new(o), Some(model)),
        _ => return Err("usage: real_features MANIFEST OUT.csv [MODEL.onnx]".into()),
    };
    let text = std::fs::read_to_string(manifest)?;
    let mut rows = endplate::manifest::parse(&manifest.display().to_string(), &text)?;
    rows.retain(|r| r.label.is_some());
    let base = manifest.parent().unwrap_or(Path::new("."));
    let rois = endplate::manifest::rois(
        &rows,
        base,
        DecodeOptions::default(),
        &RoiParams {
            vertebra_fraction: match std::env::var("VERTEBRA_FRACTION") {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("VERTEBRA_FRACTION={v}: a number such as 0.6"))?,
                Err(_) => RoiParams::default().vertebra_fraction,
            },
            ..RoiParams::default()
        },
        |_| {},
    )?;
    let values: Vec<Vec<f64>> = match model {
        None => rois.iter().map(pooled::pooled_pixels).collect(),
        Some(m) => endplate::Classifier::from_bytes(m, &std::fs::read(m)?)?
            .features(&rois)?
            .into_iter()
            .map(|f| f.into_iter().map(f64::from).collect())
            .collect(),
    };
    let mut csv = String::from("subject,level,lesion");
    for k in 0..values.first().map_or(0, Vec::len) {
        csv.push_str(&format!(",{}{k}", if model.is_some() { 'f' } else { 'p' }));
    }
    csv.push('\n');
    for (r, v) in rows.iter().zip(&values) {
        let level = r.level.map(|l| l.id()).unwrap_or("");
        let lesion = r.label.is_some_and(|l| l.is_lesion()) as u8;
        csv.push_str(&format!("{},{level},{lesion}", r.subject));
        for x in v {
            csv.push_str(&format!(",{x:.4}"));
        }
        csv.push('\n');
    }
    endplate::files::write_atomic(out, csv.as_bytes())?;
    eprintln!("{} discs -> {}", rows.len(), out.display());
    Ok(())
}
