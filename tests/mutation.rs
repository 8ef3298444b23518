//! Mutation test over the decoders: valid PNG, JPEG and DICOM files with random byte flips,
//! truncations and lying length fields. Every case must end in a slice or an image error, never a
//! panic; a truncated JPEG must be refused.
//!
//! The normal test run tries a few hundred seeded cases. The longer run is
//! `ENDPLATE_MUTATION_CASES=20000 cargo test --features train --test mutation -- --nocapture`
//! (`ENDPLATE_MUTATION_SEED` picks another seed); it prints the cases tried and every failure,
//! with the seed and case number that reproduce it.

mod common;

use common::dicom::{self, Pixels, Spec};
use endplate::image::decode::{decode, DecodeOptions};
use endplate::Error;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The originals every case starts from.
fn originals() -> Vec<(&'static str, Vec<u8>)> {
    let (w, h) = (24u32, 20u32);
    let ramp16: Vec<u16> = (0..w * h).map(|i| ((i * 37) % 4000) as u16).collect();
    let ramp8: Vec<u8> = (0..w * h).map(|i| (i * 7) as u8).collect();
    let img = image::GrayImage::from_raw(w, h, ramp8.clone()).unwrap();
    let mut jpeg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let spec = |ts, pixels| Spec {
        ts,
        rows: h as u16,
        cols: w as u16,
        frames: 1,
        bits: 16,
        photometric: "MONOCHROME2",
        rescale: Some((2.0, -10.0)),
        window: Some((1000.0, 2000.0)),
        pixels,
    };
    vec![
        ("png16", common::encode_png_gray16(w, h, &ramp16)),
        ("png8", common::encode_png_gray8(w, h, &ramp8)),
        ("jpeg", jpeg.clone()),
        (
            "dicom-explicit",
            dicom::build(spec(dicom::EXPLICIT_LE, Pixels::Native16(ramp16.clone()))),
        ),
        (
            "dicom-implicit",
            dicom::build(spec(dicom::IMPLICIT_LE, Pixels::Native16(ramp16.clone()))),
        ),
        (
            "dicom-rle",
            dicom::build(spec(
                dicom::RLE,
                Pixels::Encapsulated(vec![dicom::rle16(&ramp16)]),
            )),
        ),
        (
            "dicom-jpeg",
            dicom::build(Spec {
                bits: 8,
                ..spec(dicom::JPEG_BASELINE, Pixels::Encapsulated(vec![jpeg]))
            }),
        ),
    ]
}

/// Offsets of length fields the format's reader trusts: PNG chunk lengths, JPEG segment lengths,
/// and for DICOM every even offset past the preamble (element lengths sit at many of them).
fn length_fields(kind: &str, bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if kind.starts_with("png") {
        let mut at = 8;
        while at + 8 <= bytes.len() {
            out.push((at, 4));
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            at += 12 + len;
        }
    } else if kind == "jpeg" {
        let mut at = 2;
        while at + 4 <= bytes.len() && bytes[at] == 0xFF && bytes[at + 1] != 0xDA {
            out.push((at + 2, 2));
            at += 2 + u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        }
    } else {
        out.extend(
            (132..bytes.len().saturating_sub(4))
                .step_by(2)
                .map(|o| (o, 4)),
        );
    }
    out
}

/// What was done to a file; its fields are read through `Debug` in failure reports.
#[derive(Debug)]
#[allow(dead_code)]
enum Mutation {
    Flip(Vec<(usize, u8)>),
    Truncate(usize),
    Lie(usize, usize, u32),
}

fn mutate(kind: &str, original: &[u8], rng: &mut SmallRng) -> (Mutation, Vec<u8>) {
    let mut bytes = original.to_vec();
    let mutation = match rng.random_range(0..3) {
        0 => {
            let n = rng.random_range(1..=8);
            let flips: Vec<(usize, u8)> = (0..n)
                .map(|_| {
                    (
                        rng.random_range(0..bytes.len()),
                        rng.random_range(1..=255u8),
                    )
                })
                .collect();
            for &(at, x) in &flips {
                bytes[at] ^= x;
            }
            Mutation::Flip(flips)
        }
        1 => {
            let len = rng.random_range(0..bytes.len());
            bytes.truncate(len);
            Mutation::Truncate(len)
        }
        _ => {
            let fields = length_fields(kind, &bytes);
            let (at, width) = fields[rng.random_range(0..fields.len())];
            let value = match rng.random_range(0..4) {
                0 => u32::MAX,
                1 => 0,
                2 => rng.random_range(0..1 << 16),
                _ => rng.random(),
            };
            if width == 4 {
                let v = if kind.starts_with("dicom") {
                    value.to_le_bytes()
                } else {
                    value.to_be_bytes()
                };
                bytes[at..at + 4].copy_from_slice(&v);
            } else {
                bytes[at..at + 2].copy_from_slice(&(value as u16).to_be_bytes());
            }
            Mutation::Lie(at, width, value)
        }
    };
    (mutation, bytes)
}

/// Run `cases` seeded cases; returns (tried, failures as readable lines).
fn run(seed: u64, cases: usize) -> (usize, Vec<String>) {
    let originals = originals();
    for (kind, bytes) in &originals {
        decode(bytes, kind, DecodeOptions::default())
            .unwrap_or_else(|e| panic!("the original {kind} must decode: {e}"));
    }
    let mut failures = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..cases {
        let mut rng = SmallRng::seed_from_u64(seed ^ (case as u64).wrapping_mul(0x9E37_79B9));
        let (kind, original) = &originals[case % originals.len()];
        let (mutation, bytes) = mutate(kind, original, &mut rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            decode(&bytes, "mutant", DecodeOptions::default())
        }));
        let fail = match outcome {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Some(format!("panicked: {msg}"))
            }
            Ok(Err(Error::Image { .. })) => None,
            Ok(Err(e)) => Some(format!("not an image error: {e}")),
            Ok(Ok(s)) => {
                let truncated_jpeg = *kind == "jpeg" && matches!(mutation, Mutation::Truncate(_));
                if truncated_jpeg {
                    Some("a truncated JPEG decoded".into())
                } else if s.pixels.len() != s.width * s.height {
                    Some("slice size does not match its pixels".into())
                } else {
                    None
                }
            }
        };
        if let Some(why) = fail {
            failures.push(format!(
                "seed {seed} case {case} ({kind}, {mutation:?}): {why}"
            ));
        }
    }
    std::panic::set_hook(hook);
    (cases, failures)
}

#[test]
fn mutated_files_give_an_error_or_a_slice_never_a_panic() {
    let cases = std::env::var("ENDPLATE_MUTATION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(350);
    let seed = std::env::var("ENDPLATE_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    let (tried, failures) = run(seed, cases);
    println!(
        "mutation test: {tried} cases tried (seed {seed}), {} failures",
        failures.len()
    );
    for f in &failures {
        println!("  {f}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
