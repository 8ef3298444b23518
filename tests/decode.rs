//! Decoding slices: PNG and JPEG at native depth, DICOM in the transfer syntaxes dicom-rs decodes
//! in pure Rust, rescale, MONOCHROME1, multi-frame, window kept for display.

mod common;

use common::dicom::{self, Pixels, Spec};
use endplate::image::decode::{decode, sniff, DecodeOptions, Format};

fn ramp16(w: usize, h: usize) -> Vec<u16> {
    (0..w * h).map(|i| ((i * 37) % 4000) as u16).collect()
}

fn spec<'a>(ts: &'a str, pixels: Pixels) -> Spec<'a> {
    Spec {
        ts,
        rows: 6,
        cols: 5,
        frames: 1,
        bits: 16,
        photometric: "MONOCHROME2",
        rescale: None,
        window: None,
        pixels,
    }
}

#[test]
fn png_keeps_16_bit_values_and_converts_colour_to_gray() {
    let data = ramp16(7, 3);
    let s = decode(
        &common::encode_png_gray16(7, 3, &data),
        "a.png",
        DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!((s.width, s.height, s.bits), (7, 3, 16));
    assert_eq!(s.pixels, data.iter().map(|&v| v as f32).collect::<Vec<_>>());

    let rgb = image::RgbImage::from_fn(4, 2, |x, y| image::Rgb([(x * 50 + y) as u8; 3]));
    let mut bytes = Vec::new();
    rgb.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    let s = decode(&bytes, "rgb.png", DecodeOptions::default()).unwrap();
    assert_eq!(s.bits, 8);
    assert_eq!(s.get(3, 1), 151.0);
}

#[test]
fn jpeg_decodes_to_gray() {
    let img = image::GrayImage::from_fn(32, 16, |x, _| image::Luma([(x * 8) as u8]));
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    assert_eq!(sniff(&bytes), Some(Format::Jpeg));
    let s = decode(&bytes, "a.jpg", DecodeOptions::default()).unwrap();
    assert_eq!((s.width, s.height), (32, 16));
    assert!((s.get(20, 8) - 160.0).abs() < 6.0, "{}", s.get(20, 8));
}

#[test]
fn dicom_native_transfer_syntaxes_decode_to_the_same_values() {
    let data = ramp16(5, 6);
    let want: Vec<f32> = data.iter().map(|&v| v as f32).collect();
    for ts in [
        dicom::EXPLICIT_LE,
        dicom::IMPLICIT_LE,
        dicom::EXPLICIT_BE,
        dicom::DEFLATE,
    ] {
        let bytes = dicom::build(spec(ts, Pixels::Native16(data.clone())));
        let s =
            decode(&bytes, ts, DecodeOptions::default()).unwrap_or_else(|e| panic!("{ts}: {e}"));
        assert_eq!((s.width, s.height, s.bits), (5, 6, 16), "{ts}");
        assert_eq!(s.pixels, want, "{ts}");
        assert_eq!(s.spacing_mm, Some((0.5, 0.6)), "{ts}");
    }
}

#[test]
fn dicom_rle_and_jpeg_baseline_decode() {
    let data = ramp16(5, 6);
    let bytes = dicom::build(spec(
        dicom::RLE,
        Pixels::Encapsulated(vec![dicom::rle16(&data)]),
    ));
    let s = decode(&bytes, "rle.dcm", DecodeOptions::default()).unwrap();
    assert_eq!(s.pixels, data.iter().map(|&v| v as f32).collect::<Vec<_>>());

    let img = image::GrayImage::from_fn(16, 8, |x, _| image::Luma([(x * 16) as u8]));
    let mut jpeg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let mut s8 = spec(dicom::JPEG_BASELINE, Pixels::Encapsulated(vec![jpeg]));
    (s8.rows, s8.cols, s8.bits) = (8, 16, 8);
    let s = decode(&dicom::build(s8), "jpeg.dcm", DecodeOptions::default()).unwrap();
    assert_eq!((s.width, s.height, s.bits), (16, 8, 8));
    assert!((s.get(10, 4) - 160.0).abs() < 8.0, "{}", s.get(10, 4));
}

#[test]
fn dicom_rescale_monochrome1_and_window() {
    let data: Vec<u16> = (0..30).map(|i| i * 100).collect();
    let mut sp = spec(dicom::EXPLICIT_LE, Pixels::Native16(data.clone()));
    sp.rescale = Some((2.0, -100.0));
    sp.window = Some((1500.0, 3000.0));
    let s = decode(&dicom::build(sp), "r.dcm", DecodeOptions::default()).unwrap();
    assert_eq!(s.get(1, 0), 2.0 * 100.0 - 100.0);
    let w = s.window.unwrap();
    assert_eq!((w.center, w.width), (1500.0, 3000.0));

    let mut sp = spec(dicom::EXPLICIT_LE, Pixels::Native16(data.clone()));
    sp.photometric = "MONOCHROME1";
    sp.window = Some((1000.0, 500.0));
    let s = decode(&dicom::build(sp), "m1.dcm", DecodeOptions::default()).unwrap();
    // Inverted within the 16-bit range: stored 100 reads 65535 - 100; the window follows.
    assert_eq!(s.get(1, 0), 65435.0);
    assert!(s.get(0, 0) > s.get(2, 0));
    assert_eq!(s.window.unwrap().center, 65535.0 - 1000.0);
}

#[test]
fn dicom_multi_frame_takes_the_middle_frame_unless_told() {
    let frames: Vec<u16> = (0..3u16)
        .flat_map(|f| std::iter::repeat_n(f * 1000 + 7, 30))
        .collect();
    let mut sp = spec(dicom::EXPLICIT_LE, Pixels::Native16(frames));
    sp.frames = 3;
    let bytes = dicom::build(sp);
    assert_eq!(
        decode(&bytes, "mf", DecodeOptions::default())
            .unwrap()
            .get(0, 0),
        1007.0
    );
    assert_eq!(
        decode(&bytes, "mf", DecodeOptions { frame: Some(2) })
            .unwrap()
            .get(4, 5),
        2007.0
    );
    let e = decode(&bytes, "mf", DecodeOptions { frame: Some(3) })
        .unwrap_err()
        .to_string();
    assert!(e.contains("frame 3") && e.contains("has 3"), "{e}");
}

#[test]
fn dicom_orientation_is_read_and_a_mirrored_or_axial_slice_is_warned_about() {
    use endplate::image::orientation::warning;
    let read =
        |o: [f64; 6]| decode(&dicom::oriented(o), "o.dcm", DecodeOptions::default()).unwrap();
    let upright = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    let s = read(upright);
    assert_eq!(s.orientation, Some(upright));
    assert_eq!(warning(s.orientation), None);
    // Turned top to bottom, the column direction reverses.
    assert_eq!(
        s.flipped_vertically().orientation,
        Some([0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    );
    let mirrored = [0.0, -1.0, 0.0, 0.0, 0.0, -1.0];
    assert_eq!(read(mirrored).orientation, Some(mirrored));
    assert!(warning(read(mirrored).orientation)
        .unwrap()
        .contains("mirrored"));
    let axial = read([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    assert!(warning(axial.orientation).unwrap().contains("axial"));

    // PNG and a DICOM without the element say nothing.
    let plain = decode(
        &dicom::build(spec(dicom::EXPLICIT_LE, Pixels::Native16(ramp16(5, 6)))),
        "plain.dcm",
        DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(plain.orientation, None);
}
