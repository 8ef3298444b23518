//! Building small DICOM files in memory for decoding tests.

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
pub const DEFLATE: &str = "1.2.840.10008.1.2.1.99";
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
pub const RLE: &str = "1.2.840.10008.1.2.5";
pub const JPEG_2000: &str = "1.2.840.10008.1.2.4.90";

pub enum Pixels {
    Native16(Vec<u16>),
    Native8(Vec<u8>),
    Encapsulated(Vec<Vec<u8>>),
}

pub struct Spec<'a> {
    pub ts: &'a str,
    pub rows: u16,
    pub cols: u16,
    pub frames: u32,
    pub bits: u16,
    pub photometric: &'a str,
    pub rescale: Option<(f64, f64)>,
    pub window: Option<(f64, f64)>,
    pub pixels: Pixels,
}

pub fn build(s: Spec) -> Vec<u8> {
    build_with(s, Vec::new())
}

/// [`build`] with more elements (series, position, timing ...), put last so they replace any
/// of the same tag.
pub fn build_with(s: Spec, extra: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.4"),
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from("1.2.3.4.5.6"),
    ));
    obj.put(DataElement::new(tags::ROWS, VR::US, us(s.rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, us(s.cols)));
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(1)));
    obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, us(s.bits)));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(s.bits)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(s.bits - 1)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(s.photometric),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_SPACING,
        VR::DS,
        PrimitiveValue::from("0.5\\0.6"),
    ));
    if s.frames > 1 {
        obj.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from(s.frames.to_string()),
        ));
    }
    if let Some((slope, intercept)) = s.rescale {
        obj.put(DataElement::new(
            tags::RESCALE_SLOPE,
            VR::DS,
            PrimitiveValue::from(slope.to_string()),
        ));
        obj.put(DataElement::new(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            PrimitiveValue::from(intercept.to_string()),
        ));
    }
    if let Some((c, w)) = s.window {
        obj.put(DataElement::new(
            tags::WINDOW_CENTER,
            VR::DS,
            PrimitiveValue::from(c.to_string()),
        ));
        obj.put(DataElement::new(
            tags::WINDOW_WIDTH,
            VR::DS,
            PrimitiveValue::from(w.to_string()),
        ));
    }
    match s.pixels {
        Pixels::Native16(v) => obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(v.into()),
        )),
        Pixels::Native8(v) => obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(v.into()),
        )),
        Pixels::Encapsulated(frags) => obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), frags)),
        )),
    };
    for e in extra {
        obj.put(e);
    }
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(s.ts)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.4")
        .media_storage_sop_instance_uid("1.2.3.4.5.6");
    let file = obj.with_meta(meta).unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

/// DICOM RLE (PackBits) of 16-bit pixels: two segments, high bytes then low bytes, each as
/// literal runs.
pub fn rle16(pixels: &[u16]) -> Vec<u8> {
    let seg = |bytes: Vec<u8>| -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in bytes.chunks(128) {
            out.push((chunk.len() - 1) as u8);
            out.extend_from_slice(chunk);
        }
        if out.len() % 2 == 1 {
            out.push(0x80); // no-op byte keeps segments even
        }
        out
    };
    let hi = seg(pixels.iter().map(|p| (p >> 8) as u8).collect());
    let lo = seg(pixels.iter().map(|p| (p & 0xff) as u8).collect());
    let mut header = [0u32; 16];
    header[0] = 2;
    header[1] = 64;
    header[2] = 64 + hi.len() as u32;
    let mut out: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    out.extend(hi);
    out.extend(lo);
    out
}

/// A 64 x 64 16-bit DICOM (a ramp, no spine) whose ImageOrientationPatient is `o`.
pub fn oriented(o: [f64; 6]) -> Vec<u8> {
    let text = o.map(|v| v.to_string()).join("\\");
    let pixels: Vec<u16> = (0..64 * 64).map(|i| ((i * 37) % 4000) as u16).collect();
    build_with(
        Spec {
            ts: EXPLICIT_LE,
            rows: 64,
            cols: 64,
            frames: 1,
            bits: 16,
            photometric: "MONOCHROME2",
            rescale: None,
            window: None,
            pixels: Pixels::Native16(pixels),
        },
        vec![DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            PrimitiveValue::from(text),
        )],
    )
}
