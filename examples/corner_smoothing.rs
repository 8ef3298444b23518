//! Would averaging each disc's logits over copies with moved corners make its class steadier
//! between hand-placed and detected corners (issue #12's "classes changed" target)? For every
//! disc of a corner manifest that the bundled detector finds at its level (centres within half a
//! width, as `bench/detected_vs_hand.py`), the bundled classifier runs on the disc as placed and
//! on COPIES moved copies (sd FRACTION of its width per corner and axis, as
//! `train --corner-jitter`), logits averaged before calibration, once with the hand corners and
//! once with the detected ones. Prints the share of discs whose class and lesion call change.
//!
//! cargo build --all-targets --features train
//! target/debug/examples/corner_smoothing data/spider/corners-heldout.csv COPIES FRACTION
use endplate::image::decode::DecodeOptions;
use endplate::{Classifier, Roi, RoiParams};
use rand::SeedableRng;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [manifest, copies, fraction] = &args[..] else {
        return Err("usage: corner_smoothing MANIFEST COPIES FRACTION".into());
    };
    let (manifest, copies, fraction) = (
        Path::new(manifest),
        copies.parse::<usize>()?,
        fraction.parse::<f64>()?,
    );
    let model = Classifier::from_bytes("m", &std::fs::read("models/endplate-default.onnx")?)?;
    let det = endplate::model::detector::Detector::from_bytes(
        "d",
        &std::fs::read("models/endplate-detector.onnx")?,
    )?;
    let text = std::fs::read_to_string(manifest)?;
    let rows = endplate::manifest::parse(&manifest.display().to_string(), &text)?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let p = RoiParams::default();
    let jitter = endplate::train::CornerJitter {
        fraction,
        copies,
        seed: 11,
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let (mut n, mut class_changed, mut lesion_changed, mut deltas) = (0, 0, 0, Vec::new());
    let mut predict =
        |slice: &endplate::Slice,
         c: [endplate::disc::geometry::Point; 4]|
         -> Result<endplate::model::inference::Prediction, Box<dyn std::error::Error>> {
            let own = Roi::extract(slice, &c, &p)?;
            let moved = jitter.copies(slice, c, &own, &p, &mut rng);
            let rois: Vec<Roi> = std::iter::once(own).chain(moved).collect();
            let input = endplate::disc::roi::network_input(&rois, &model.card().preprocessing);
            let l = model.logits(input, rois.len())?;
            let mut m = [0f32; 4];
            for x in &l {
                for k in 0..4 {
                    m[k] += x[k] / l.len() as f32;
                }
            }
            Ok(model.predict(m))
        };
    endplate::manifest::each_slice(
        &rows,
        base,
        DecodeOptions::default(),
        |_| (),
        |_, slice, idx| {
            let found = det
                .detect(slice)
                .map_err(|e| endplate::Error::Inference(e.to_string()))?;
            for &i in idx {
                let r = &rows[i];
                let h = endplate::disc::geometry::centre(&r.corners);
                let w = r.corners[0].distance(r.corners[1]);
                let Some(d) = found
                    .iter()
                    .find(|d| d.lumbar_level() == r.level && d.center().distance(h) < 0.5 * w)
                else {
                    continue;
                };
                let a = predict(slice, r.corners)
                    .map_err(|e| endplate::Error::Inference(e.to_string()))?;
                let b = predict(slice, d.corners)
                    .map_err(|e| endplate::Error::Inference(e.to_string()))?;
                n += 1;
                class_changed += (a.class != b.class) as usize;
                lesion_changed +=
                    ((a.probabilities[0] <= 0.5) != (b.probabilities[0] <= 0.5)) as usize;
                deltas.push(
                    (0..4)
                        .map(|k| (a.probabilities[k] - b.probabilities[k]).abs())
                        .fold(0f32, f32::max),
                );
            }
            Ok(())
        },
    )?;
    deltas.sort_by(f32::total_cmp);
    println!("copies {copies} fraction {fraction}: {n} discs, class changed {:.1} %, lesion call {:.1} %, max dp {:.3}, median {:.3}",
        100.0 * class_changed as f64 / n as f64, 100.0 * lesion_changed as f64 / n as f64, deltas[n - 1], deltas[n / 2]);
    Ok(())
}
