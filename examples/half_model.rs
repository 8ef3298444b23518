//! Store a model's weights as float16 (half the download) and check, on a labelled or unlabelled
//! manifest, that no disc changes class and no calibrated probability moves by 0.01 or more.
//! Writes the half model only when the check passes.
//!
//! cargo run --release --example half_model -- IN.onnx OUT.onnx MANIFEST.csv

use endplate::decode::{decode_file, DecodeOptions};
use endplate::model_file::{half_storage, parse_proto};
use endplate::{Classifier, Roi};
use prost::Message;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, manifest] = [0, 1, 2].map(|i| args.get(i).cloned().unwrap_or_default());
    if manifest.is_empty() {
        return Err("usage: half_model IN.onnx OUT.onnx MANIFEST.csv".into());
    }
    let bytes = std::fs::read(&input)?;
    let half = half_storage(parse_proto(&input, &bytes)?).encode_to_vec();
    let full = Classifier::from_bytes(&input, &bytes)?;
    let small = Classifier::from_bytes("half", &half)?;
    let manifest = Path::new(&manifest);
    let rows = endplate::manifest::parse(
        &manifest.display().to_string(),
        &std::fs::read_to_string(manifest)?,
    )?;
    let p = &full.card().preprocessing;
    let (mut worst, mut changed) = (0.0f32, 0usize);
    let mut current: Option<(String, endplate::Slice)> = None;
    for r in &rows {
        if current.as_ref().map(|c| &c.0) != Some(&r.image) {
            current = Some((
                r.image.clone(),
                decode_file(
                    &manifest.parent().unwrap_or(Path::new(".")).join(&r.image),
                    DecodeOptions::default(),
                )?,
            ));
        }
        let roi = Roi::extract(&current.as_ref().unwrap().1, &r.corners, p)?;
        let (a, b) = (
            full.classify(std::slice::from_ref(&roi))?.remove(0),
            small.classify(&[roi])?.remove(0),
        );
        changed += (a.class != b.class) as usize;
        for k in 0..4 {
            worst = worst.max((a.probabilities[k] - b.probabilities[k]).abs());
        }
    }
    println!(
        "{} discs: {changed} changed class, largest probability change {worst:.5}; {} -> {} bytes",
        rows.len(),
        bytes.len(),
        half.len()
    );
    if changed > 0 || worst >= 0.01 {
        return Err("float16 storage changes the predictions too much; keeping float32".into());
    }
    endplate::files::write_atomic(Path::new(&output), &half)?;
    println!("wrote {output}");
    Ok(())
}
