//! A study in: many DICOM files (a folder, several picked files, a zip, a DICOMDIR's folder)
//! grouped into series, each series' slices ordered along its normal, the sagittal T2 series and
//! its mid-sagittal slice proposed. Files that are not readable DICOM images are listed and
//! skipped, never fatal.
//!
//! Only headers are read here (up to the pixel data, `header`); the chosen slice is decoded by
//! [`crate::image::decode`] as any single file is. `collect` gathers the files (page and CLI
//! alike), `archive` reads zips within limits, `dicomdir` checks a DICOMDIR's listing.
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

pub mod archive;
mod collect;
pub mod dicomdir;
mod header;

pub use archive::{Archive, Limits};
#[cfg(not(target_arch = "wasm32"))]
pub use collect::open;
pub use collect::{Collector, Sources};
pub use header::{read_file, FileKind, Header};

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::image::orientation::normal;
pub use crate::image::orientation::Plane;

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

/// A DICOMDIR met among the study's files: how many files it lists, and those not found.
#[derive(Debug, Clone, Serialize)]
pub struct DicomdirNote {
    pub name: String,
    pub listed: usize,
    /// Listed files that were not among the study's files, as study names beside the DICOMDIR.
    pub missing: Vec<String>,
}

/// Many files read as a study.
#[derive(Debug, Clone, Serialize)]
pub struct Study {
    /// Series ordered by series number, then description.
    pub series: Vec<Series>,
    pub skipped: Vec<Skipped>,
    /// The index in `series` of the proposed sagittal T2 series, if any series is sagittal.
    pub proposed: Option<usize>,
    pub dicomdirs: Vec<DicomdirNote>,
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
    /// Group headers already read ([`Collector::finish`]).
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
            dicomdirs: Vec::new(),
        }
    }

    /// The series and slice to use: `series` (an index into [`Study::series`]) or the proposed
    /// one, and `slice` or its mid-sagittal slice.
    pub fn pick(&self, series: Option<usize>, slice: Option<usize>) -> Result<Pick<'_>> {
        let index = match series.or(self.proposed) {
            Some(i) => i,
            None => {
                return Err(Error::Invalid(format!(
                    "no sagittal series among the {} series found ({}): open the study in the \
                     page and pick the series there, or give --series a folder holding only the \
                     series to use",
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
