//! The twelve real SPIDER T2 slices from the shared folder: each decodes and gives a sensible
//! ROI for one disc whose corners were placed by hand on the slice. Skipped, with a message,
//! where the shared folder is absent.

mod common;

use endplate::decode::{decode_file, DecodeOptions};
use endplate::{Point, Roi, RoiParams};

/// One disc per slice: file, and its corners read off the slice with a 10-pixel grid.
const DISCS: [(&str, [f64; 8]); 12] = [
    (
        "spider_20_t2.png",
        [141., 326., 196., 322., 141., 340., 197., 337.],
    ),
    (
        "spider_40_t2.png",
        [163., 331., 220., 331., 163., 350., 220., 350.],
    ),
    (
        "spider_60_t2.png",
        [203., 240., 278., 243., 203., 258., 278., 257.],
    ),
    (
        "spider_80_t2.png",
        [146., 173., 203., 185., 146., 190., 203., 193.],
    ),
    (
        "spider_100_t2.png",
        [190., 468., 243., 460., 190., 490., 242., 482.],
    ),
    (
        "spider_120_t2.png",
        [151., 199., 189., 199., 151., 211., 189., 211.],
    ),
    (
        "spider_140_t2.png",
        [157., 148., 222., 160., 158., 160., 222., 171.],
    ),
    (
        "spider_160_t2.png",
        [110., 151., 152., 148., 110., 161., 152., 157.],
    ),
    (
        "spider_181_t2.png",
        [140., 281., 190., 283., 141., 305., 190., 303.],
    ),
    (
        "spider_200_t2.png",
        [192., 287., 245., 286., 193., 297., 246., 296.],
    ),
    (
        "spider_220_t2.png",
        [243., 289., 300., 291., 243., 300., 300., 303.],
    ),
    (
        "spider_241_t2.png",
        [242., 248., 304., 254., 243., 264., 305., 268.],
    ),
];

#[test]
fn every_real_slice_decodes_and_gives_a_disc_roi() {
    let Some(dir) = common::spider_dir() else {
        return;
    };
    let p = RoiParams::default();
    for (file, c) in DISCS {
        let slice = decode_file(&dir.join(file), DecodeOptions::default()).unwrap();
        // Gray stored as RGB comes out as one 8-bit channel.
        assert_eq!(slice.bits, 8, "{file}");
        assert!(slice.width >= 256 && slice.height >= 256, "{file}");
        let corners: [Point; 4] = std::array::from_fn(|i| Point::new(c[2 * i], c[2 * i + 1]));
        let roi = Roi::extract(&slice, &corners, &p).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(roi.pixels.len(), 128 * 128);

        // The disc ROI is wider than high: whole rows at the top and bottom are padding, whole
        // columns are not.
        let row = |y: usize| &roi.pixels[y * 128..(y + 1) * 128];
        assert!(
            row(0).iter().all(|&v| v == 0.5),
            "{file}: top row should be padding"
        );
        assert!(
            row(64).iter().any(|&v| v != 0.5),
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
