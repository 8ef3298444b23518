//! Do the evidence maps point at the lesion? On fresh phantoms, where the lesion's pixels are
//! known (the defect label of the truth map, cut as the disc's ROI), the share of each map's
//! positive mass that falls inside the drawn lesion, and inside the lesion grown by 8 ROI
//! pixels (half a stride: the map's own resolution), per true class, against the share of the
//! ROI those regions cover (what a map blind to the lesion would give).
//!
//! cargo run --release --example evidence_phantoms -- [MODEL] [SUBJECTS] [PER_CLASS]
//! (defaults: the bundled model, 60 subjects of seed 9001, at most 15 discs per lesion class)

use endplate::model::evidence::{occlusion, PATCH, STRIDE};
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::{Class, Classifier};
use std::time::Instant;

fn dilate(mask: &[f32], n: usize, r: isize) -> Vec<f32> {
    let mut out = vec![0.0; n * n];
    for y in 0..n as isize {
        for x in 0..n as isize {
            let hit = (-r..=r).any(|dy| {
                (-r..=r).any(|dx| {
                    let (xx, yy) = (x + dx, y + dy);
                    xx >= 0
                        && yy >= 0
                        && xx < n as isize
                        && yy < n as isize
                        && mask[yy as usize * n + xx as usize] > 0.0
                })
            });
            out[y as usize * n + x as usize] = if hit { 1.0 } else { 0.0 };
        }
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_path = args.first().cloned().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/endplate-default.onnx").to_string()
    });
    let subjects: usize = args.get(1).map_or(Ok(60), |s| s.parse())?;
    let per_class: usize = args.get(2).map_or(Ok(15), |s| s.parse())?;
    let model = Classifier::from_bytes(&model_path, &std::fs::read(&model_path)?)?;
    let p = model.card().preprocessing.clone();
    // Per class: discs, correct, sums of (inside, area, inside grown, area grown), seconds.
    let mut acc = [[0.0f64; 7]; 4];
    for i in 0..subjects {
        if Class::ALL[1..]
            .iter()
            .all(|c| acc[c.index()][0] as usize >= per_class)
        {
            break;
        }
        let ph = render(&plan_subject(9001, i, ClassMix::Balanced, 16));
        for (k, d) in ph.discs.iter().enumerate() {
            let a = &mut acc[d.class.index()];
            if d.class == Class::Normal || a[0] as usize >= per_class {
                continue;
            }
            let roi = endplate::Roi::extract(&ph.slice, &d.corners, &p)?;
            let lesion = ph.lesion_roi(k, &p)?;
            let mask: Vec<f32> = lesion
                .pixels
                .iter()
                .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
                .collect();
            if mask.iter().all(|&v| v == 0.0) {
                continue;
            }
            let grown = dilate(&mask, roi.size, 8);
            let t = Instant::now();
            let e = occlusion(&model, &roi)?;
            let secs = t.elapsed().as_secs_f64();
            let Some(inside) = e.mass_inside(&mask) else {
                continue;
            };
            let area = |m: &[f32]| m.iter().sum::<f32>() as f64 / m.len() as f64;
            a[0] += 1.0;
            a[1] += (e.class == d.class) as u8 as f64;
            a[2] += inside;
            a[3] += area(&mask);
            a[4] += e.mass_inside(&grown).unwrap_or(0.0);
            a[5] += area(&grown);
            a[6] += secs;
        }
    }
    println!("patch {PATCH}, stride {STRIDE}, model {model_path}");
    println!("| class | discs | predicted right | map mass in lesion | lesion's share of ROI | mass in lesion + 8 px | its share of ROI | s per map |");
    println!("|---|---|---|---|---|---|---|---|");
    for c in &Class::ALL[1..] {
        let a = acc[c.index()];
        let n = a[0].max(1.0);
        println!(
            "| {} | {} | {} | {:.0} % | {:.1} % | {:.0} % | {:.0} % | {:.2} |",
            c.display_name(),
            a[0],
            a[1],
            100.0 * a[2] / n,
            100.0 * a[3] / n,
            100.0 * a[4] / n,
            100.0 * a[5] / n,
            a[6] / n
        );
    }
    Ok(())
}
