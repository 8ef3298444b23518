//! How hard are the phantoms? A simple baseline — multinomial logistic regression on the ROI's
//! pixels, downsampled to 32x32 — trained on one phantom set and tested on another. It must not
//! come close to perfect, and the faintest lesions must be the hardest.
//!
//! cargo run --release --example phantom_baseline -- TRAIN_DIR TEST_DIR
//! (folders written by `endplate synth`, with manifest.csv and truth.json)

use endplate::image::decode::{decode_file, DecodeOptions};
use endplate::{Class, Roi, RoiParams};
use std::path::Path;

#[path = "common/pooled.rs"]
mod pooled;
use pooled::pooled_pixels;

/// Feature rows, class indices and lesion severities of one phantom set.
type Features = (Vec<Vec<f64>>, Vec<usize>, Vec<f64>);

fn features(dir: &Path) -> Result<Features, Box<dyn std::error::Error>> {
    let rows = endplate::manifest::parse(
        "manifest.csv",
        &std::fs::read_to_string(dir.join("manifest.csv"))?,
    )?;
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json"))?)?;
    let severity: Vec<f64> = truth["discs"]
        .as_array()
        .ok_or("truth.json has no discs")?
        .iter()
        .map(|d| d["disc"]["severity"].as_f64().unwrap_or(0.0))
        .collect();
    let p = RoiParams::default();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut current: Option<(String, endplate::Slice)> = None;
    for r in &rows {
        if current.as_ref().map(|c| &c.0) != Some(&r.image) {
            current = Some((
                r.image.clone(),
                decode_file(&dir.join(&r.image), DecodeOptions::default())?,
            ));
        }
        let roi = Roi::extract(&current.as_ref().unwrap().1, &r.corners, &p)?;
        let mut f = vec![1.0];
        f.extend(pooled_pixels(&roi));
        x.push(f);
        y.push(
            r.label
                .and_then(|l| l.class())
                .ok_or("unlabelled row or no four-class label")?
                .index(),
        );
    }
    Ok((x, y, severity))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (train_dir, test_dir) = (
        Path::new(args.first().ok_or("usage: TRAIN_DIR TEST_DIR")?),
        Path::new(args.get(1).ok_or("usage: TRAIN_DIR TEST_DIR")?),
    );
    let (x, y, _) = features(train_dir)?;
    let (xt, yt, sev) = features(test_dir)?;
    let d = x[0].len();
    // Class-balanced softmax regression, full-batch gradient descent with L2.
    let mut counts = [0.0f64; 4];
    y.iter().for_each(|&c| counts[c] += 1.0);
    let mut w = vec![vec![0.0f64; d]; 4];
    let (lr, l2) = (0.5, 1e-3);
    for _ in 0..300 {
        let mut g = vec![vec![0.0f64; d]; 4];
        for (xi, &yi) in x.iter().zip(&y) {
            let z: Vec<f64> = w
                .iter()
                .map(|wk| wk.iter().zip(xi).map(|(a, b)| a * b).sum())
                .collect();
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            let weight = x.len() as f64 / (4.0 * counts[yi]);
            for k in 0..4 {
                let err = (e[k] / s - if k == yi { 1.0 } else { 0.0 }) * weight;
                for (gj, xj) in g[k].iter_mut().zip(xi) {
                    *gj += err * xj;
                }
            }
        }
        for k in 0..4 {
            for j in 0..d {
                w[k][j] -= lr * (g[k][j] / x.len() as f64 + l2 * w[k][j]);
            }
        }
    }
    let predict = |xi: &Vec<f64>| {
        (0..4)
            .max_by(|&a, &b| {
                let za: f64 = w[a].iter().zip(xi).map(|(p, q)| p * q).sum();
                let zb: f64 = w[b].iter().zip(xi).map(|(p, q)| p * q).sum();
                za.total_cmp(&zb)
            })
            .unwrap()
    };
    let acc = |xs: &[Vec<f64>], ys: &[usize]| {
        xs.iter().zip(ys).filter(|(a, &b)| predict(a) == b).count() as f64 / xs.len().max(1) as f64
    };
    println!("logistic regression on 32x32 ROI pixels: train {:.1} %, test {:.1} % ({} test discs, chance 25 % balanced)", 100.0 * acc(&x, &y), 100.0 * acc(&xt, &yt), xt.len());
    for c in Class::ALL {
        let idx: Vec<usize> = (0..yt.len()).filter(|&i| yt[i] == c.index()).collect();
        let ok = idx.iter().filter(|&&i| predict(&xt[i]) == yt[i]).count();
        println!(
            "  sensitivity {:<8} {:5.1} % of {}",
            c.id(),
            100.0 * ok as f64 / idx.len().max(1) as f64,
            idx.len()
        );
    }
    for (lo, hi) in [(0.0, 1.0 / 3.0), (1.0 / 3.0, 2.0 / 3.0), (2.0 / 3.0, 1.01)] {
        let idx: Vec<usize> = (0..yt.len())
            .filter(|&i| yt[i] != 0 && sev[i] >= lo && sev[i] < hi)
            .collect();
        let ok = idx.iter().filter(|&&i| predict(&xt[i]) == yt[i]).count();
        println!(
            "  lesions of severity {lo:.2}-{:.2}: {:5.1} % right of {}",
            hi.min(1.0),
            100.0 * ok as f64 / idx.len().max(1) as f64,
            idx.len()
        );
    }
    Ok(())
}
