//! Does test-time augmentation help on real discs? For every fold of a cross-validation report
//! (`train --folds`: REPORT/fold-K/model.onnx and the subjects it held out in its
//! predictions.csv), each held-out disc is classified as it is, mirrored (anterior and posterior
//! swapped, as training's flips do), and with its corners moved at random (`copies` draws, sd
//! 0.03 of the disc's width, as `train --corner-jitter 0.03`), each of those mirrored too. One
//! CSV row per disc: subject, truth (1 = lesion) and P(lesion) plain, plain+mirror, and over all
//! variants (logits averaged, then the fold model's calibration). `bench/paired_auc.py` pools them.
//!
//! cargo build --all-targets --features train
//! target/debug/examples/tta_check data/spider/manifest.csv target/real-experiments/real-ft-jitter 4 > tta.csv

use endplate::image::decode::DecodeOptions;
use endplate::{Classifier, Roi, RoiParams};
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::path::Path;

fn mirrored(roi: &Roi) -> Roi {
    let n = roi.size;
    let pixels = (0..n * n)
        .map(|i| roi.pixels[(i / n) * n + (n - 1 - i % n)])
        .collect();
    Roi {
        size: n,
        pixels,
        moved: Vec::new(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (manifest, report, copies) = match &args[..] {
        [m, r, c] => (Path::new(m), Path::new(r), c.parse::<usize>()?),
        _ => return Err("usage: tta_check MANIFEST CV_REPORT COPIES".into()),
    };
    let text = std::fs::read_to_string(manifest)?;
    let mut all = endplate::manifest::parse(&manifest.display().to_string(), &text)?;
    all.retain(|r| r.label.is_some());
    let base = manifest.parent().unwrap_or(Path::new("."));
    let p = RoiParams::default();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    // As `train --corner-jitter 0.03`.
    let jitter = endplate::train::CornerJitter {
        fraction: 0.03,
        copies,
        seed: 11,
    };
    println!("subject,lesion,plain,mirror,all");
    for fold in 1.. {
        let dir = report.join(format!("fold-{fold}"));
        if !dir.is_dir() {
            break;
        }
        let held: BTreeSet<String> = std::fs::read_to_string(dir.join("predictions.csv"))?
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next())
            .map(|s| {
                s.trim_matches('"')
                    .rsplit(':')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let model = Classifier::from_bytes("fold", &std::fs::read(dir.join("model.onnx"))?)?;
        let rows: Vec<_> = all
            .iter()
            .filter(|r| held.contains(&r.subject))
            .cloned()
            .collect();
        // Per disc: the ROI as placed, then `copies` with moved corners (a cut that fails, on a
        // thin disc, falls back to the disc's own ROI, as in training).
        let mut per_disc: Vec<Vec<Roi>> = vec![Vec::new(); rows.len()];
        endplate::manifest::each_slice(
            &rows,
            base,
            DecodeOptions::default(),
            |_| (),
            |_, slice, idx| {
                for &i in idx {
                    let c = rows[i].corners;
                    let own = Roi::extract(slice, &c, &p)?;
                    let moved = jitter.copies(slice, c, &own, &p, &mut rng);
                    per_disc[i].push(own);
                    per_disc[i].extend(moved);
                }
                Ok(())
            },
        )?;
        let mut logits: Vec<Vec<[f32; 4]>> = Vec::new(); // [variant*2 + mirror][disc]
        for v in 0..=copies {
            let rois: Vec<Roi> = per_disc.iter().map(|d| d[v].clone()).collect();
            for r in [rois.clone(), rois.iter().map(mirrored).collect()] {
                let input = endplate::disc::roi::network_input(&r, &model.card().preprocessing);
                logits.push(model.logits(input, r.len())?);
            }
        }
        let mean = |which: &[usize], d: usize| {
            let mut m = [0f32; 4];
            for &w in which {
                for k in 0..4 {
                    m[k] += logits[w][d][k] / which.len() as f32;
                }
            }
            1.0 - model.predict(m).probabilities[0]
        };
        let every: Vec<usize> = (0..logits.len()).collect();
        for (d, r) in rows.iter().enumerate() {
            println!(
                "{},{},{},{},{}",
                r.subject,
                r.label.is_some_and(|l| l.is_lesion()) as u8,
                mean(&[0], d),
                mean(&[0, 1], d),
                mean(&every, d)
            );
        }
        eprintln!("fold {fold}: {} discs", rows.len());
    }
    Ok(())
}
