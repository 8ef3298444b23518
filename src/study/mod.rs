//! A study in: many DICOM files (a folder, several picked files) grouped into series, each
//! series' slices ordered along its normal, the sagittal T2 series and its mid-sagittal slice
//! proposed. Files that are not readable DICOM images are listed and skipped, never fatal.
//!
//! Only headers are read here (up to the pixel data); the chosen slice is decoded by
//! [`crate::image::decode`] as any single file is.
//!
//! How the proposal is made:
//! - a series is **sagittal** when the normal of its ImageOrientationPatient (row x column
//!   direction) lies within 30 degrees of the patient's left-right axis;
//! - among sagittal series the **T2** one scores highest: "T2" in the series or protocol
//!   description (not "T1", "STIR", "FLAIR", "localizer"/"scout"), a long repetition time
//!   (> 1500 ms) and echo time (> 60 ms); ties go to the series with more slices;
//! - its **mid-sagittal slice** is the one whose position along the normal is nearest the
//!   centre of the series' extent (first to last slice), so a missing slice does not shift it.
//!
//! This can be wrong when the spine is not centred in the field of view (scoliosis, an offset
//! sagittal block), when descriptions are blank or in another language and the timing is
//! ambiguous, or when several sagittal T2 series exist (e.g. a fat-saturated one); the page and
//! the CLI say what they took, and both let the user choose another series or slice.

use crate::error::{Error, Result};
use crate::image::decode::{sniff, Format};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Cursor;

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

/// Which way a series is cut, from its orientation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    Sagittal,
    Coronal,
    Axial,
    Oblique,
    Unknown,
}

impl Plane {
    /// The plane whose normal is within 30 degrees of the series' normal.
    pub fn of(orientation: Option<[f64; 6]>) -> Plane {
        let Some(n) = orientation.and_then(normal) else {
            return Plane::Unknown;
        };
        let cos30 = 30f64.to_radians().cos();
        if n[0].abs() >= cos30 {
            Plane::Sagittal
        } else if n[1].abs() >= cos30 {
            Plane::Coronal
        } else if n[2].abs() >= cos30 {
            Plane::Axial
        } else {
            Plane::Oblique
        }
    }
}

/// The unit normal (row x column) of an orientation, if it is one.
fn normal(o: [f64; 6]) -> Option<[f64; 3]> {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    (len > 1e-6 && len.is_finite()).then(|| n.map(|v| v / len))
}

/// One slice of a series: its file and where it lies.
#[derive(Debug, Clone, Serialize)]
pub struct SliceEntry {
    pub name: String,
    pub instance_number: Option<i32>,
    /// Position along the series' normal (mm), when the file has position and orientation.
    pub position_mm: Option<f64>,
}

/// A series: its files in slice order.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub uid: String,
    pub description: String,
    pub number: Option<i32>,
    pub plane: Plane,
    pub echo_time_ms: Option<f64>,
    pub repetition_time_ms: Option<f64>,
    pub spacing_mm: Option<(f64, f64)>,
    pub rows: u32,
    pub cols: u32,
    /// Slices ordered along the normal (by InstanceNumber where positions are missing).
    pub slices: Vec<SliceEntry>,
    /// Files left out as duplicates of a slice already in the series (same instance UID or
    /// same position).
    pub duplicates: Vec<String>,
    /// How the slices were ordered: `"position"` or `"instance number"`.
    pub ordered_by: &'static str,
}

impl Series {
    /// The index of the slice nearest the centre of the series' extent along its normal
    /// (the middle index where positions are unknown).
    pub fn mid_slice(&self) -> usize {
        let pos: Vec<f64> = self.slices.iter().filter_map(|s| s.position_mm).collect();
        if pos.len() != self.slices.len() || pos.is_empty() {
            return self.slices.len().saturating_sub(1) / 2;
        }
        let centre = 0.5 * (pos[0] + pos[pos.len() - 1]);
        let mut best = 0;
        for (i, p) in pos.iter().enumerate() {
            // Ties go to the lower index, so an even count takes the slice before the centre.
            if (p - centre).abs() < (pos[best] - centre).abs() - 1e-6 {
                best = i;
            }
        }
        best
    }

    /// How likely this series is the sagittal T2 one (higher is likelier; only sagittal series
    /// score above zero).
    pub fn t2_score(&self) -> i32 {
        if self.plane != Plane::Sagittal {
            return 0;
        }
        let d = self.description.to_uppercase();
        let mut score = 10;
        if d.contains("T2") {
            score += 20;
        }
        for bad in ["T1", "STIR", "FLAIR", "LOCALI", "SCOUT", "SURVEY", "PD"] {
            if d.contains(bad) {
                score -= 15;
            }
        }
        if self.repetition_time_ms.is_some_and(|tr| tr > 1500.0) {
            score += 5;
        }
        if self.echo_time_ms.is_some_and(|te| te > 60.0) {
            score += 5;
        }
        if self.echo_time_ms.is_some_and(|te| te < 30.0) {
            score -= 5;
        }
        if self.slices.len() < 3 {
            score -= 8;
        }
        score.max(1)
    }
}

/// A file that is not part of any series, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// Many files read as a study.
#[derive(Debug, Clone, Serialize)]
pub struct Study {
    /// Series ordered by series number, then description.
    pub series: Vec<Series>,
    pub skipped: Vec<Skipped>,
    /// The index in `series` of the proposed sagittal T2 series, if any series is sagittal.
    pub proposed: Option<usize>,
}

/// The proposed (or chosen) slice of a study.
#[derive(Debug, Clone, Serialize)]
pub struct Pick<'a> {
    pub series: &'a Series,
    /// 0-based index of the slice in the series' order.
    pub slice: usize,
    pub file: &'a str,
}

impl Study {
    /// Group files (name, bytes) into series. Never fails: what cannot be read is skipped.
    pub fn from_files<'a, I>(files: I) -> Study
    where
        I: IntoIterator<Item = (String, &'a [u8])>,
    {
        let mut headers = Vec::new();
        let mut skipped = Vec::new();
        for (name, bytes) in files {
            match read_header(bytes, &name) {
                Ok(h) => headers.push(h),
                Err(reason) => skipped.push(Skipped { name, reason }),
            }
        }
        Self::from_headers(headers, skipped)
    }

    /// Group headers already read (the page reads them one file at a time).
    pub fn from_headers(headers: Vec<Header>, skipped: Vec<Skipped>) -> Study {
        let mut groups: BTreeMap<String, Vec<Header>> = BTreeMap::new();
        for h in headers {
            groups.entry(h.series_uid.clone()).or_default().push(h);
        }
        let mut series: Vec<Series> = groups.into_values().map(build_series).collect();
        series.sort_by(|a, b| {
            (a.number.unwrap_or(i32::MAX), &a.description, &a.uid).cmp(&(
                b.number.unwrap_or(i32::MAX),
                &b.description,
                &b.uid,
            ))
        });
        let proposed = series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.t2_score() > 0)
            .max_by_key(|(i, s)| (s.t2_score(), s.slices.len(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        Study {
            series,
            skipped,
            proposed,
        }
    }

    /// The series and slice to use: `series` (an index into [`Study::series`]) or the proposed
    /// one, and `slice` or its mid-sagittal slice.
    pub fn pick(&self, series: Option<usize>, slice: Option<usize>) -> Result<Pick<'_>> {
        let index = match series.or(self.proposed) {
            Some(i) => i,
            None => {
                return Err(Error::Invalid(format!(
                    "no sagittal series among the {} series found ({}); choose one",
                    self.series.len(),
                    self.series
                        .iter()
                        .map(|s| format!("{:?} {}", s.description, plane_name(s.plane)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let s = self.series.get(index).ok_or_else(|| {
            Error::Invalid(format!(
                "series {index} asked, the study has {} (0-based)",
                self.series.len()
            ))
        })?;
        let slice = slice.unwrap_or_else(|| s.mid_slice());
        let entry = s.slices.get(slice).ok_or_else(|| {
            Error::Invalid(format!(
                "slice {slice} asked, series {:?} has {} (0-based)",
                s.description,
                s.slices.len()
            ))
        })?;
        Ok(Pick {
            series: s,
            slice,
            file: &entry.name,
        })
    }
}

fn plane_name(p: Plane) -> &'static str {
    match p {
        Plane::Sagittal => "sagittal",
        Plane::Coronal => "coronal",
        Plane::Axial => "axial",
        Plane::Oblique => "oblique",
        Plane::Unknown => "orientation unknown",
    }
}

fn build_series(mut files: Vec<Header>) -> Series {
    // The orientation most files share stands for the series.
    let first = &files[0];
    let orientation = first.orientation;
    let n = orientation.and_then(normal);
    let along = |h: &Header| -> Option<f64> {
        let (n, p) = (n?, h.position?);
        Some(n[0] * p[0] + n[1] * p[1] + n[2] * p[2])
    };
    let by_position = files.iter().all(|h| along(h).is_some());
    if by_position {
        files.sort_by(|a, b| {
            along(a)
                .partial_cmp(&along(b))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.name.cmp(&b.name))
        });
    } else {
        files.sort_by(|a, b| {
            (a.instance_number.unwrap_or(i32::MAX), &a.name)
                .cmp(&(b.instance_number.unwrap_or(i32::MAX), &b.name))
        });
    }
    let mut slices: Vec<SliceEntry> = Vec::new();
    let mut seen_uids = std::collections::HashSet::new();
    let mut duplicates = Vec::new();
    for h in &files {
        let pos = along(h);
        let same_uid = h
            .sop_instance_uid
            .as_ref()
            .is_some_and(|u| !seen_uids.insert(u.clone()));
        let same_place = by_position
            && slices
                .last()
                .and_then(|s| s.position_mm)
                .zip(pos)
                .is_some_and(|(a, b)| (a - b).abs() < 1e-3);
        if same_uid || same_place {
            duplicates.push(h.name.clone());
            continue;
        }
        slices.push(SliceEntry {
            name: h.name.clone(),
            instance_number: h.instance_number,
            position_mm: pos,
        });
    }
    let first = &files[0];
    Series {
        uid: first.series_uid.clone(),
        description: first.series_description.clone(),
        number: first.series_number,
        plane: Plane::of(orientation),
        echo_time_ms: first.echo_time_ms,
        repetition_time_ms: first.repetition_time_ms,
        spacing_mm: first.spacing_mm,
        rows: first.rows,
        cols: first.cols,
        slices,
        duplicates,
        ordered_by: if by_position {
            "position"
        } else {
            "instance number"
        },
    }
}

/// Read one file's header (up to the pixel data). The reason it is skipped otherwise.
pub fn read_header(bytes: &[u8], name: &str) -> std::result::Result<Header, String> {
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
    if sop_class == "1.2.840.10008.1.3.10" {
        return Err("a DICOMDIR (an index; the images it lists are read as files)".into());
    }
    let text = |tag| -> Option<String> {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
    };
    let floats = |tag| -> Option<Vec<f64>> {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_multi_float64().ok())
            .filter(|v| v.iter().all(|x| x.is_finite()))
    };
    let int = |tag| -> Option<i32> { obj.element(tag).ok().and_then(|e| e.to_int::<i32>().ok()) };
    let float = |tag| floats(tag).and_then(|v| v.first().copied());
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
    Ok(Header {
        name: name.to_string(),
        series_uid,
        sop_instance_uid: text(tags::SOP_INSTANCE_UID).filter(|s| !s.is_empty()),
        series_description: description,
        series_number: int(tags::SERIES_NUMBER),
        instance_number: int(tags::INSTANCE_NUMBER),
        position: floats(tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3)
            .map(|v| [v[0], v[1], v[2]]),
        orientation: floats(tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() == 6)
            .map(|v| std::array::from_fn(|i| v[i])),
        echo_time_ms: float(tags::ECHO_TIME),
        repetition_time_ms: float(tags::REPETITION_TIME),
        spacing_mm: floats(tags::PIXEL_SPACING)
            .filter(|v| v.len() == 2)
            .map(|v| (v[0], v[1])),
        rows: rows as u32,
        cols: cols as u32,
        frames: int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32,
    })
}

/// Every file under `dir` (recursively, in name order) read as a study. Unreadable files are
/// skipped and listed like foreign ones; only an unreadable `dir` itself is an error.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_dir(dir: &std::path::Path) -> Result<Study> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let mut headers = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let name = p.display().to_string();
        match std::fs::read(&p) {
            Ok(bytes) => match read_header(&bytes, &name) {
                Ok(h) => headers.push(h),
                Err(reason) => skipped.push(Skipped { name, reason }),
            },
            Err(e) => skipped.push(Skipped {
                name,
                reason: e.to_string(),
            }),
        }
    }
    Ok(Study::from_headers(headers, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_from_orientation() {
        assert_eq!(
            Plane::of(Some([0.0, 1.0, 0.0, 0.0, 0.0, -1.0])),
            Plane::Sagittal
        );
        assert_eq!(
            Plane::of(Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])),
            Plane::Axial
        );
        assert_eq!(
            Plane::of(Some([1.0, 0.0, 0.0, 0.0, 0.0, -1.0])),
            Plane::Coronal
        );
        assert_eq!(Plane::of(None), Plane::Unknown);
        assert_eq!(Plane::of(Some([0.0; 6])), Plane::Unknown);
    }
}
