//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod dicom;
pub mod study;

use endplate::model::card::ModelCard;
use endplate::model::file::{write_model, BatchNorm};
use endplate::model::resnet::{Architecture, Weights};
use endplate::Slice;
use std::path::PathBuf;

/// A seeded random ResNet18 written by our writer, and its weights.
pub fn random_model(seed: u64, bn: BatchNorm) -> (Vec<u8>, Weights) {
    let arch = Architecture::resnet18(4);
    let weights = arch.random_weights(seed);
    let bytes = write_model(&arch, &weights, &ModelCard::untrained("test", seed), bn).unwrap();
    (bytes, weights)
}

/// The real SPIDER slices, or None (with a message) when ../shared is not there.
pub fn spider_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/spider-t2-sample");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} is absent (the real sample slices live in the shared folder)",
            dir.display()
        );
        None
    }
}

/// A slice sampled from a function of continuous coordinates at pixel centres.
pub fn slice_from_fn(w: usize, h: usize, f: impl Fn(f64, f64) -> f64) -> Slice {
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            px.push(f(x as f64 + 0.5, y as f64 + 0.5) as f32);
        }
    }
    Slice::new(w, h, px, 16).unwrap()
}

pub fn encode_png_gray16(w: u32, h: u32, data: &[u16]) -> Vec<u8> {
    let img = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, data.to_vec()).unwrap();
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

pub fn encode_png_gray8(w: u32, h: u32, data: &[u8]) -> Vec<u8> {
    let img = image::GrayImage::from_raw(w, h, data.to_vec()).unwrap();
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// Run the `endplate` binary that cargo built for these tests.
pub fn endplate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_endplate"))
        .args(args)
        .output()
        .unwrap()
}

/// `endplate synth` phantoms in `dir`: their manifest's path and text.
pub fn synth(dir: &std::path::Path, subjects: usize, seed: u64) -> (PathBuf, String) {
    let o = endplate(&[
        "synth",
        "--out",
        dir.to_str().unwrap(),
        "--subjects",
        &subjects.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = dir.join("manifest.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    (manifest, text)
}
