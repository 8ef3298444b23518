//! The twelve real SPIDER T2 slices from the shared folder: each decodes and gives a sensible
//! ROI for one disc whose corners were placed by hand on the slice (tests/data/spider-manifest.csv,
//! read off each slice on a 10-pixel grid; the level is not given since the slices are unlabelled).
//! Skipped, with a message, where the shared folder is absent.

mod common;

use endplate::image::decode::{decode_file, DecodeOptions};
use endplate::{Roi, RoiParams};
use std::path::Path;

#[test]
fn every_real_slice_decodes_and_gives_a_disc_roi() {
    if common::spider_dir().is_none() {
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/spider-manifest.csv");
    let rows = endplate::manifest::parse(
        "spider-manifest.csv",
        &std::fs::read_to_string(&manifest).unwrap(),
    )
    .unwrap();
    assert_eq!(rows.len(), 12);
    let p = RoiParams::default();
    for row in rows {
        let file = &row.image;
        let slice = decode_file(
            &manifest.parent().unwrap().join(file),
            DecodeOptions::default(),
        )
        .unwrap();
        // Gray stored as RGB comes out as one 8-bit channel.
        assert_eq!(slice.bits, 8, "{file}");
        assert!(slice.width >= 256 && slice.height >= 256, "{file}");
        let roi = Roi::extract(&slice, &row.corners, &p).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(roi.pixels.len(), 128 * 128);

        // The disc ROI is wider than high: whole rows at the top and bottom are padding, whole
        // columns are not.
        let line = |y: usize| &roi.pixels[y * 128..(y + 1) * 128];
        assert!(
            line(0).iter().all(|&v| v == 0.5),
            "{file}: top row should be padding"
        );
        assert!(
            line(64).iter().any(|&v| v != 0.5),
            "{file}: middle row should be image"
        );

        // Real anatomy: the content spans a good part of the stretched range.
        let content: Vec<f32> = roi.pixels.iter().copied().filter(|&v| v != 0.5).collect();
        let mean = content.iter().sum::<f32>() / content.len() as f32;
        let sd =
            (content.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / content.len() as f32).sqrt();
        assert!(sd > 0.08, "{file}: ROI is nearly flat (sd {sd})");
    }
}
