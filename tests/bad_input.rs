//! Bad input of every kind gives a clear error that names the problem, never a panic.

mod common;

use common::dicom::{self, Pixels, Spec};
use endplate::image::decode::{decode, DecodeOptions};
use endplate::model::card::ModelCard;
use endplate::model::file::{write_model, BatchNorm};
use endplate::model::resnet::Architecture;
use endplate::{Classifier, Error};

fn image_error(bytes: &[u8], name: &str) -> String {
    match decode(bytes, name, DecodeOptions::default()) {
        Err(e @ Error::Image { .. }) => e.to_string(),
        other => panic!("{name}: expected an image error, got {other:?}"),
    }
}

fn model_error(bytes: &[u8]) -> String {
    match Classifier::from_bytes("m.onnx", bytes) {
        Err(e @ Error::Model { .. }) => e.to_string(),
        Err(e) => panic!("expected a model error, got {e}"),
        Ok(_) => panic!("expected a model error, the model loaded"),
    }
}

#[test]
fn bad_images() {
    let good = common::encode_png_gray8(64, 64, &[128; 64 * 64]);
    let truncated = &good[..good.len() / 2];
    let e = image_error(truncated, "trunc.png");
    assert!(e.contains("trunc.png"), "{e}");

    let e = image_error(b"patient notes, not a picture\n", "notes.png");
    assert!(e.contains("not a PNG, JPEG or DICOM"), "{e}");

    // A valid PNG signature and IHDR claiming 100000 x 100000 pixels, nothing else.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    bomb.extend(13u32.to_be_bytes());
    bomb.extend(&ihdr);
    bomb.extend(crc32(&ihdr).to_be_bytes());
    let e = image_error(&bomb, "bomb.png");
    assert!(
        e.to_lowercase().contains("limit") || e.contains("100000"),
        "{e}"
    );

    let jp2 = dicom::build(Spec {
        ts: dicom::JPEG_2000,
        rows: 4,
        cols: 4,
        frames: 1,
        bits: 16,
        photometric: "MONOCHROME2",
        rescale: None,
        window: None,
        pixels: Pixels::Encapsulated(vec![vec![0xFF, 0x4F, 0xFF, 0x51, 0, 0]]),
    });
    let e = image_error(&jp2, "j2k.dcm");
    assert!(
        e.contains("1.2.840.10008.1.2.4.90") && e.contains("supported"),
        "{e}"
    );

    let mut big = dicom::build(Spec {
        ts: dicom::EXPLICIT_LE,
        rows: 2,
        cols: 2,
        frames: 1,
        bits: 16,
        photometric: "MONOCHROME2",
        rescale: None,
        window: None,
        pixels: Pixels::Native16(vec![0; 4]),
    });
    big.truncate(big.len() - 3);
    let e = image_error(&big, "cut.dcm");
    assert!(e.contains("cut.dcm"), "{e}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_models() {
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let e = model_error(&random);
    assert!(e.contains("not an ONNX"), "{e}");

    let arch = Architecture::resnet18(4);
    let w = arch.random_weights(1);

    // A 3-class head: output [N, 3].
    let arch3 = Architecture::resnet18(3);
    let w3 = arch3.random_weights(1);
    let bytes = write_model(&arch3, &w3, &ModelCard::untrained("x", 1), BatchNorm::Fold).unwrap();
    let e = model_error(&bytes);
    assert!(e.contains("[N, 4]"), "{e}");

    // A card from the future.
    let mut card = ModelCard::untrained("x", 1);
    card.format_version = 99;
    let bytes = write_model(&arch, &w, &card, BatchNorm::Fold).unwrap();
    let e = model_error(&bytes);
    assert!(e.contains("version 99"), "{e}");

    // No card at all.
    let bytes = write_model(&arch, &w, &ModelCard::untrained("x", 1), BatchNorm::Fold).unwrap();
    let mut proto = endplate::model::file::parse_proto("m", &bytes).unwrap();
    proto.metadata_props.clear();
    let e = model_error(&prost::Message::encode_to_vec(&proto));
    assert!(e.contains("no model card"), "{e}");

    // Classes in another order.
    let mut card = ModelCard::untrained("x", 1);
    card.classes.swap(0, 1);
    let e = model_error(&write_model(&arch, &w, &card, BatchNorm::Fold).unwrap());
    assert!(e.contains("classes"), "{e}");

    // Missing weight: the writer refuses and names it.
    let mut partial = w.clone();
    partial.remove("layer3.1.bn2.running_var");
    let e = write_model(
        &arch,
        &partial,
        &ModelCard::untrained("x", 1),
        BatchNorm::Keep,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("layer3.1.bn2.running_var"), "{e}");
}

#[test]
fn bad_manifest_and_corners_via_the_library() {
    let slice = common::slice_from_fn(50, 40, |x, _| x);
    let outside = [
        endplate::Point::new(10.0, 10.0),
        endplate::Point::new(60.0, 10.0),
        endplate::Point::new(10.0, 20.0),
        endplate::Point::new(40.0, 20.0),
    ];
    let e = endplate::Roi::extract(&slice, &outside, &endplate::RoiParams::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the 50x40 slice"), "{e}");
}

#[test]
fn truncated_jpeg_and_palette_colour_dicom_are_refused() {
    let img = image::GrayImage::from_fn(32, 32, |x, y| image::Luma([(x * 7 + y) as u8]));
    let mut jpeg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    assert!(decode(&jpeg, "whole.jpg", DecodeOptions::default()).is_ok());
    let e = image_error(&jpeg[..jpeg.len() * 2 / 3], "cut.jpg");
    assert!(e.contains("cut.jpg") && e.contains("truncated"), "{e}");
    let e = image_error(&jpeg[..jpeg.len() - 1], "last-byte.jpg");
    assert!(e.contains("truncated"), "{e}");

    let palette = dicom::build(Spec {
        ts: dicom::EXPLICIT_LE,
        rows: 2,
        cols: 2,
        frames: 1,
        bits: 8,
        photometric: "PALETTE COLOR",
        rescale: None,
        window: None,
        pixels: Pixels::Native8(vec![0, 1, 2, 3]),
    });
    let e = image_error(&palette, "palette.dcm");
    assert!(
        e.contains("palette.dcm") && e.contains("PALETTE COLOR") && e.contains("MONOCHROME"),
        "{e}"
    );
}
