//! One file's header, as far as grouping and ordering a study need it. Only the header is
//! read (up to the pixel data); the slice a user picks is decoded later, as any single file is.

use crate::image::decode::{dicom_floats, sniff, Format};
use serde::Serialize;
use std::io::Cursor;

/// Media Storage SOP Class of a DICOMDIR (the index of a CD or a PACS export).
pub const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";

/// What a readable DICOM file turned out to be.
#[derive(Debug)]
pub enum FileKind {
    Image(Box<Header>),
    /// A DICOMDIR: the files it lists, as `/`-separated paths relative to its own folder.
    Dicomdir(Vec<String>),
}

/// One DICOM image file's header, as far as grouping and ordering need it.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// The file's name (a path, or the name the page was given).
    pub name: String,
    pub series_uid: String,
    pub sop_instance_uid: Option<String>,
    pub series_description: String,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    /// ImagePositionPatient (mm).
    pub position: Option<[f64; 3]>,
    /// ImageOrientationPatient: row then column direction cosines.
    pub orientation: Option<[f64; 6]>,
    pub echo_time_ms: Option<f64>,
    pub repetition_time_ms: Option<f64>,
    /// PixelSpacing (row, column; mm).
    pub spacing_mm: Option<(f64, f64)>,
    pub rows: u32,
    pub cols: u32,
    pub frames: u32,
}

/// Read one file's header (up to the pixel data): an image's header, or a DICOMDIR's listing.
/// The reason it is skipped otherwise.
pub fn read_file(bytes: &[u8], name: &str) -> std::result::Result<FileKind, String> {
    use dicom_dictionary_std::tags;
    use dicom_object::file::ReadPreamble;
    if sniff(bytes) != Some(Format::Dicom) {
        return Err(match sniff(bytes) {
            Some(_) => "a PNG/JPEG picture, not part of a DICOM series".into(),
            None => "not a DICOM file".into(),
        });
    }
    let obj = dicom_object::OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .read_until(tags::PIXEL_DATA)
        .from_reader(Cursor::new(bytes))
        .map_err(|e| format!("not a readable DICOM file: {e}"))?;
    let sop_class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches(['\0', ' '])
        .to_string();
    if sop_class == DICOMDIR_SOP_CLASS {
        return super::dicomdir::listing(&obj).map(FileKind::Dicomdir);
    }
    let text = |tag| -> Option<String> {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
    };
    let int = |tag| -> Option<i32> { obj.element(tag).ok().and_then(|e| e.to_int::<i32>().ok()) };
    // The first value (a multi-echo series lists several echo times).
    let float = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_multi_float64().ok())
            .and_then(|v| v.first().copied())
            .filter(|x: &f64| x.is_finite())
    };
    let rows = int(tags::ROWS).filter(|&v| v > 0);
    let cols = int(tags::COLUMNS).filter(|&v| v > 0);
    let (Some(rows), Some(cols)) = (rows, cols) else {
        return Err("a DICOM file without an image (no Rows/Columns)".into());
    };
    let series_uid = text(tags::SERIES_INSTANCE_UID)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(no SeriesInstanceUID)".into());
    let description = text(tags::SERIES_DESCRIPTION)
        .filter(|s| !s.is_empty())
        .or_else(|| text(tags::PROTOCOL_NAME))
        .unwrap_or_default();
    Ok(FileKind::Image(Box::new(Header {
        name: name.to_string(),
        series_uid,
        sop_instance_uid: text(tags::SOP_INSTANCE_UID).filter(|s| !s.is_empty()),
        series_description: description,
        series_number: int(tags::SERIES_NUMBER),
        instance_number: int(tags::INSTANCE_NUMBER),
        position: dicom_floats(&obj, tags::IMAGE_POSITION_PATIENT),
        orientation: dicom_floats(&obj, tags::IMAGE_ORIENTATION_PATIENT),
        echo_time_ms: float(tags::ECHO_TIME),
        repetition_time_ms: float(tags::REPETITION_TIME),
        spacing_mm: dicom_floats(&obj, tags::PIXEL_SPACING).map(|[r, c]| (r, c)),
        rows: rows as u32,
        cols: cols as u32,
        frames: int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32,
    })))
}
