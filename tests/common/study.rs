//! Writing multi-file DICOM studies, zips of them and DICOMDIRs: for the study tests and, through
//! `examples/write_study.rs`, for the page's browser test (no binary fixtures in the repository).

use super::dicom::{self, Pixels, Spec};
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::io::Write;

pub const SAGITTAL: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
pub const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

pub struct SeriesSpec<'a> {
    pub uid: &'a str,
    pub number: i32,
    pub description: &'a str,
    pub orientation: Option<[f64; 6]>,
    pub te: f64,
    pub tr: f64,
}

/// One slice's pixels (16-bit) and spacing (row, column; mm).
pub struct Image {
    pub rows: u16,
    pub cols: u16,
    pub pixels: Vec<u16>,
    pub spacing_mm: (f64, f64),
}

impl Image {
    /// An 8 x 6 slice in which every pixel holds `value`, so a decoded file tells which it was.
    pub fn flat(value: u16) -> Image {
        Image {
            rows: 8,
            cols: 6,
            pixels: vec![value; 48],
            spacing_mm: (0.5, 0.6),
        }
    }
}

/// One slice file of a series: `index` makes its SOP Instance UID, `position` its
/// ImagePositionPatient.
pub fn slice_file(
    s: &SeriesSpec,
    index: usize,
    instance: i32,
    position: Option<[f64; 3]>,
    image: Image,
) -> Vec<u8> {
    let ds = |v: String| PrimitiveValue::from(v);
    let multi = |v: &[f64]| {
        ds(v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("\\"))
    };
    let mut extra = vec![
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(s.uid),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(format!("{}.{index}", s.uid)),
        ),
        DataElement::new(tags::SERIES_NUMBER, VR::IS, ds(s.number.to_string())),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, ds(instance.to_string())),
        DataElement::new(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            PrimitiveValue::from(s.description),
        ),
        DataElement::new(tags::ECHO_TIME, VR::DS, ds(s.te.to_string())),
        DataElement::new(tags::REPETITION_TIME, VR::DS, ds(s.tr.to_string())),
        DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            multi(&[image.spacing_mm.0, image.spacing_mm.1]),
        ),
    ];
    if let Some(o) = s.orientation {
        extra.push(DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            multi(&o),
        ));
    }
    if let Some(p) = position {
        extra.push(DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            multi(&p),
        ));
    }
    dicom::build_with(
        Spec {
            ts: dicom::EXPLICIT_LE,
            rows: image.rows,
            cols: image.cols,
            frames: 1,
            bits: 16,
            photometric: "MONOCHROME2",
            rescale: None,
            window: None,
            pixels: Pixels::Native16(image.pixels),
        },
        extra,
    )
}

/// A zip of `(path inside, bytes)`, deflated.
pub fn zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in files {
        w.start_file(path.as_str(), options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A DICOMDIR listing `files` (paths relative to its folder, `/`-separated), one series record
/// and one image record per file, as a CD's index has them.
pub fn dicomdir(files: &[&str]) -> Vec<u8> {
    dicomdir_of(Some(files))
}

/// A DICOMDIR without its DirectoryRecordSequence (a damaged index).
pub fn damaged_dicomdir() -> Vec<u8> {
    dicomdir_of(None)
}

fn dicomdir_of(files: Option<&[&str]>) -> Vec<u8> {
    let ul = |tag, v: u32| DataElement::new(tag, VR::UL, PrimitiveValue::from(v));
    let record = |kind: &str, file: Option<&str>| {
        let mut item = InMemDicomObject::new_empty();
        item.put(ul(tags::OFFSET_OF_THE_NEXT_DIRECTORY_RECORD, 0));
        item.put(DataElement::new(
            tags::RECORD_IN_USE_FLAG,
            VR::US,
            PrimitiveValue::from(0xFFFFu16),
        ));
        item.put(ul(
            tags::OFFSET_OF_REFERENCED_LOWER_LEVEL_DIRECTORY_ENTITY,
            0,
        ));
        item.put(DataElement::new(
            tags::DIRECTORY_RECORD_TYPE,
            VR::CS,
            PrimitiveValue::from(kind),
        ));
        if let Some(f) = file {
            let parts: Vec<String> = f.split('/').map(str::to_uppercase).collect();
            item.put(DataElement::new(
                tags::REFERENCED_FILE_ID,
                VR::CS,
                PrimitiveValue::Strs(parts.into()),
            ));
        }
        item
    };
    let mut items = vec![record("SERIES", None)];
    items.extend(
        files
            .unwrap_or(&[])
            .iter()
            .map(|f| record("IMAGE", Some(f))),
    );
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::FILE_SET_ID,
        VR::CS,
        PrimitiveValue::from("ENDPLATE"),
    ));
    obj.put(ul(
        tags::OFFSET_OF_THE_FIRST_DIRECTORY_RECORD_OF_THE_ROOT_DIRECTORY_ENTITY,
        0,
    ));
    obj.put(ul(
        tags::OFFSET_OF_THE_LAST_DIRECTORY_RECORD_OF_THE_ROOT_DIRECTORY_ENTITY,
        0,
    ));
    obj.put(DataElement::new(
        tags::FILE_SET_CONSISTENCY_FLAG,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    if files.is_some() {
        obj.put(DataElement::new(
            tags::DIRECTORY_RECORD_SEQUENCE,
            VR::SQ,
            DataSetSequence::new(items, Length::UNDEFINED),
        ));
    }
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(dicom::EXPLICIT_LE)
        .media_storage_sop_class_uid("1.2.840.10008.1.3.10")
        .media_storage_sop_instance_uid("1.2.826.0.1.999");
    let mut out = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut out).unwrap();
    out
}
