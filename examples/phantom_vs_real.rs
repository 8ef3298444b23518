//! Phantoms next to the real SPIDER slices: a side-by-side picture (docs/phantoms-vs-real.png)
//! and a few image statistics measured the same way on both, to show where the phantoms still
//! differ from real images.
//!
//! cargo run --release --example phantom_vs_real [-- PHANTOMS]

use endplate::image::contrast::Stretch;
use endplate::image::decode::{decode_file, DecodeOptions};
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::{Point, Roi, RoiParams, Slice};
use std::path::Path;

/// Statistics of one slice and one of its discs, on the 1 %/99 % stretched values.
fn stats(slice: &Slice, corners: &[Point; 4]) -> [f64; 5] {
    let st = Stretch::of(slice, 0.01, 0.99);
    let (w, h) = (slice.width, slice.height);
    let v = |x: usize, y: usize| st.apply(slice.get(x, y)) as f64;
    // Immerkaer's noise estimate from the Laplacian-difference filter.
    let mut lap = 0.0;
    let mut grad = 0.0;
    let mut dark = 0usize;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let l = v(x - 1, y - 1) - 2.0 * v(x, y - 1) + v(x + 1, y - 1) - 2.0 * v(x - 1, y)
                + 4.0 * v(x, y)
                - 2.0 * v(x + 1, y)
                + v(x - 1, y + 1)
                - 2.0 * v(x, y + 1)
                + v(x + 1, y + 1);
            lap += l.abs();
            grad += ((v(x + 1, y) - v(x - 1, y)).powi(2) + (v(x, y + 1) - v(x, y - 1)).powi(2))
                .sqrt()
                / 2.0;
            dark += (v(x, y) < 0.05) as usize;
        }
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let noise = (std::f64::consts::FRAC_PI_2).sqrt() * lap / (6.0 * n);
    // Tissue ratios inside the disc ROI: disc centre, marrow above and below, CSF behind.
    let roi = Roi::extract_with(slice, &st, corners, &RoiParams::default()).expect("corners valid");
    let rows: Vec<usize> = (0..128)
        .filter(|&y| roi.pixels[y * 128 + 64] != 0.5 || roi.pixels[y * 128 + 40] != 0.5)
        .collect();
    let (top, bot) = (rows[0], *rows.last().unwrap());
    let mean = |ys: std::ops::Range<usize>, xs: std::ops::Range<usize>| {
        let mut s = 0.0;
        let mut c = 0.0;
        for y in ys {
            for x in xs.clone() {
                s += roi.pixels[y * 128 + x] as f64;
                c += 1.0;
            }
        }
        s / c
    };
    let mid = (top + bot) / 2;
    let disc = mean(mid - 2..mid + 3, 50..78);
    let marrow = 0.5 * (mean(top + 3..top + 9, 45..83) + mean(bot - 8..bot - 2, 45..83));
    let mut behind: Vec<f32> = (mid - 3..mid + 4)
        .flat_map(|y| (108..126).map(move |x| (y, x)))
        .map(|(y, x)| roi.pixels[y * 128 + x])
        .collect();
    behind.sort_by(f32::total_cmp);
    let csf = behind[behind.len() * 9 / 10] as f64;
    [
        disc / marrow.max(1e-3),
        csf / marrow.max(1e-3),
        noise,
        grad / n,
        dark as f64 / n,
    ]
}

fn to_gray8(slice: &Slice) -> image::GrayImage {
    let st = Stretch::of(slice, 0.01, 0.99);
    image::GrayImage::from_fn(slice.width as u32, slice.height as u32, |x, y| {
        image::Luma([(st.apply(slice.get(x as usize, y as usize)) * 255.0).round() as u8])
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(24);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("tests/data/spider-manifest.csv");
    let rows =
        endplate::manifest::parse("spider-manifest.csv", &std::fs::read_to_string(&manifest)?)?;
    let mut real = Vec::new();
    let mut pictures = Vec::new();
    for row in &rows {
        let path = manifest.parent().unwrap().join(&row.image);
        let slice = decode_file(&path, DecodeOptions::default())
            .map_err(|e| format!("{e} (the real slices live in ../shared)"))?;
        real.push(stats(&slice, &row.corners));
        if pictures.len() < 4 {
            pictures.push(to_gray8(&slice));
        }
    }
    let mut phantom = Vec::new();
    let mut phantom_pictures = Vec::new();
    for i in 0..count {
        let ph = render(&plan_subject(2024, i, ClassMix::Paper, 8));
        let d = &ph.discs[2];
        phantom.push(stats(&ph.slice, &d.corners));
        if phantom_pictures.len() < 4 {
            phantom_pictures.push(to_gray8(&ph.slice));
        }
    }
    let names = [
        "disc / marrow",
        "CSF / marrow",
        "noise sd",
        "mean |gradient|",
        "dark fraction",
    ];
    println!(
        "{:<16} {:>18} {:>18}",
        "statistic",
        "real (n=12)",
        format!("phantom (n={count})")
    );
    let ms = |v: &[[f64; 5]], k: usize| {
        let m = v.iter().map(|s| s[k]).sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|s| (s[k] - m).powi(2)).sum::<f64>() / (v.len() - 1).max(1) as f64)
            .sqrt();
        format!("{m:.3} ± {sd:.3}")
    };
    for (k, name) in names.iter().enumerate() {
        println!("{:<16} {:>18} {:>18}", name, ms(&real, k), ms(&phantom, k));
    }

    // Side by side: real slices on top, phantoms below, each scaled to 320 px high.
    let tile = |img: &image::GrayImage| {
        let w = (img.width() as f64 * 320.0 / img.height() as f64).round() as u32;
        image::imageops::resize(img, w, 320, image::imageops::FilterType::Triangle)
    };
    let top: Vec<_> = pictures.iter().map(tile).collect();
    let bottom: Vec<_> = phantom_pictures.iter().map(tile).collect();
    let width = top
        .iter()
        .map(|t| t.width())
        .sum::<u32>()
        .max(bottom.iter().map(|t| t.width()).sum::<u32>());
    let mut canvas = image::GrayImage::new(width, 640);
    for (row, tiles) in [top, bottom].iter().enumerate() {
        let mut x = 0;
        for t in tiles {
            image::imageops::overlay(&mut canvas, t, x as i64, row as i64 * 320);
            x += t.width();
        }
    }
    let out = root.join("docs/phantoms-vs-real.png");
    canvas.save(&out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
