//! Store a model's weights compactly — float16 (half the float32 download) or int8 with a scale
//! per output channel (a quarter); or back as float32 (f32) — and check on a manifest's discs that no disc changes class
//! and no calibrated probability moves by 0.01 or more against the input model. Writes the
//! compact model only when the check passes.
//!
//! cargo run --release --example compact_model -- f16|int8|f32 IN.onnx OUT.onnx MANIFEST.csv

use endplate::image::decode::DecodeOptions;
use endplate::model::file::parse_proto;
use endplate::model::storage::{half_storage, int8_storage, widen_stored_weights};
use endplate::Classifier;
use prost::Message;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [storage, input, output, manifest] =
        [0, 1, 2, 3].map(|i| args.get(i).cloned().unwrap_or_default());
    if manifest.is_empty() || !["f16", "int8", "f32"].contains(&storage.as_str()) {
        return Err("usage: compact_model f16|int8|f32 IN.onnx OUT.onnx MANIFEST.csv".into());
    }
    let bytes = std::fs::read(&input)?;
    // Start from float32 whatever the input's storage, and compare against the input as it runs.
    let full = widen_stored_weights(parse_proto(&input, &bytes)?);
    let compact = match storage.as_str() {
        "f16" => half_storage(full),
        "int8" => int8_storage(full),
        _ => full,
    }
    .encode_to_vec();
    let reference = Classifier::from_bytes(&input, &bytes)?;
    let small = Classifier::from_bytes("compact", &compact)?;
    let manifest = Path::new(&manifest);
    let rows = endplate::manifest::parse(
        &manifest.display().to_string(),
        &std::fs::read_to_string(manifest)?,
    )?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let p = &reference.card().preprocessing;
    let rois = endplate::manifest::rois(&rows, base, DecodeOptions::default(), p, |_| ())?;
    let (mut worst, mut changed) = (0.0f32, 0usize);
    for chunk in rois.chunks(16) {
        for (a, b) in reference
            .classify(chunk)?
            .iter()
            .zip(small.classify(chunk)?)
        {
            changed += usize::from(a.class != b.class);
            for k in 0..4 {
                worst = worst.max((a.probabilities[k] - b.probabilities[k]).abs());
            }
        }
    }
    println!(
        "{storage}: {} discs: {changed} changed class, largest probability change {worst:.5}; {} -> {} bytes",
        rows.len(),
        bytes.len(),
        compact.len()
    );
    if changed > 0 || worst >= 0.01 {
        return Err(
            format!("{storage} storage changes the predictions too much; not written").into(),
        );
    }
    endplate::files::write_atomic(Path::new(&output), &compact)?;
    println!("wrote {output}");
    Ok(())
}
