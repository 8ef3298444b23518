//! How well a detector finds the discs of slices whose corners are known: per level, discs
//! found with the right level, found with a wrong one, missed; false discs; and the corner
//! error (median and 90th percentile, in pixels and, where the spacing is known, millimetres).
//!
//! A true disc is found when a detected disc's centre lies within half the true disc's
//! endplate width of its centre; each detected disc matches at most one true disc, nearest
//! first. Only lumbar levels count: thoracic discs the detector reports are neither right nor
//! false, since the truth (SPIDER corners, phantom lumbar discs) does not cover them.
//!
//! Intervals come from a bootstrap over subjects, since a subject's discs share one scan and
//! one level count. (The file passes 400 lines only with its hand-checked tests.)

use super::lesion::{subject_groups, subject_resamples};
use super::metrics::Estimate;
use crate::class::Level;
use crate::disc::detection::{spec_order, DetectedDisc};
use crate::disc::geometry::{centre, Point};
use serde::Serialize;

/// Resamples of the subject-level bootstrap behind every interval.
pub const BOOTSTRAP: usize = 500;

/// The truth for one slice.
#[derive(Debug, Clone)]
pub struct SliceTruth {
    pub image: String,
    /// Who the slice shows: the bootstrap resamples subjects, all their slices together.
    pub subject: String,
    /// Millimetres per pixel, where known.
    pub spacing_mm: Option<f64>,
    pub discs: Vec<(Level, [Point; 4])>,
}

/// One true disc's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct DiscOutcome {
    pub image: String,
    pub level: Level,
    /// The level the matched detection was given (`None`: missed, or level unnamed).
    pub found_as: Option<String>,
    /// True and matched detected corners, SPEC order, `[x, y]` each.
    pub truth: [[f64; 2]; 4],
    pub detected: Option<[[f64; 2]; 4]>,
    /// Each corner's distance in pixels (SPEC order), when found.
    pub corner_errors_px: Option<[f64; 4]>,
    pub spacing_mm: Option<f64>,
}

impl DiscOutcome {
    pub fn found(&self) -> bool {
        self.detected.is_some()
    }

    pub fn right_level(&self) -> bool {
        self.found() && self.found_as.as_deref() == Some(self.level.id())
    }
}

/// One slice's outcome: every true disc, and the false discs.
#[derive(Debug, Clone, Serialize)]
pub struct SliceOutcome {
    pub image: String,
    pub subject: String,
    pub discs: Vec<DiscOutcome>,
    /// Lumbar-level detections matching no true disc: their level and corners.
    pub false_detections: Vec<(Option<String>, [[f64; 2]; 4])>,
}

impl SliceOutcome {
    pub fn false_discs(&self) -> usize {
        self.false_detections.len()
    }
}

/// Match one slice's detections to its truth.
pub fn match_slice(truth: &SliceTruth, found: &[DetectedDisc]) -> SliceOutcome {
    let ordered: Vec<[Point; 4]> = truth.discs.iter().map(|(_, c)| spec_order(*c)).collect();
    let mut pairs = Vec::new();
    for (t, tc) in ordered.iter().enumerate() {
        let w = 0.5 * (tc[0].distance(tc[1]) + tc[2].distance(tc[3]));
        for (f, d) in found.iter().enumerate() {
            let dd = centre(tc).distance(d.center());
            if dd <= 0.5 * w {
                pairs.push((dd, t, f));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut t_used, mut f_used) = (vec![None; ordered.len()], vec![false; found.len()]);
    for (_, t, f) in pairs {
        if t_used[t].is_none() && !f_used[f] {
            t_used[t] = Some(f);
            f_used[f] = true;
        }
    }
    let xy = |c: &[Point; 4]| c.map(|p| [p.x, p.y]);
    let discs = truth
        .discs
        .iter()
        .zip(&ordered)
        .zip(&t_used)
        .map(|(((level, _), tc), m)| {
            let d = m.map(|f| &found[f]);
            DiscOutcome {
                image: truth.image.clone(),
                level: *level,
                found_as: d.and_then(|d| d.level.clone()),
                truth: xy(tc),
                detected: d.map(|d| xy(&d.corners)),
                corner_errors_px: d.map(|d| std::array::from_fn(|k| tc[k].distance(d.corners[k]))),
                spacing_mm: truth.spacing_mm,
            }
        })
        .collect();
    let false_detections = found
        .iter()
        .zip(&f_used)
        .filter(|(d, used)| !**used && d.lumbar_level().is_some())
        .map(|(d, _)| (d.level.clone(), xy(&d.corners)))
        .collect();
    SliceOutcome {
        image: truth.image.clone(),
        subject: truth.subject.clone(),
        discs,
        false_detections,
    }
}

/// Median and 90th percentile (nearest rank) of `v`; `None` when empty.
pub fn median_p90(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    Some((at(0.5), at(0.9)))
}

/// One row of the report (a level, or all levels).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LevelReport {
    pub level: String,
    pub discs: usize,
    pub right_level: usize,
    pub wrong_level: usize,
    pub missed: usize,
    /// Right-level share of the level's discs.
    pub right_level_rate: f64,
    pub corner_median_px: Option<f64>,
    pub corner_p90_px: Option<f64>,
    pub corner_median_mm: Option<f64>,
    pub corner_p90_mm: Option<f64>,
}

impl LevelReport {
    fn of<'a>(name: String, sel: impl Iterator<Item = &'a DiscOutcome>) -> LevelReport {
        let (mut discs, mut right, mut found) = (0, 0, 0);
        let (mut px, mut mm) = (Vec::new(), Vec::new());
        for o in sel {
            discs += 1;
            right += o.right_level() as usize;
            found += o.found() as usize;
            for e in o.corner_errors_px.into_iter().flatten() {
                px.push(e);
                mm.extend(o.spacing_mm.map(|s| e * s));
            }
        }
        let (pm, p9) = median_p90(&px).unzip();
        let (mm_m, mm_9) = median_p90(&mm).unzip();
        LevelReport {
            level: name,
            discs,
            right_level: right,
            wrong_level: found - right,
            missed: discs - found,
            right_level_rate: right as f64 / discs.max(1) as f64,
            corner_median_px: pm,
            corner_p90_px: p9,
            corner_median_mm: mm_m,
            corner_p90_mm: mm_9,
        }
    }
}

/// 95 % intervals of the overall figures, from a bootstrap over subjects (all slices and discs
/// of a subject drawn together, seed 1).
#[derive(Debug, Clone, Serialize)]
pub struct Intervals {
    pub subjects: usize,
    pub right_level_rate: Estimate,
    pub false_rate: Estimate,
    pub corner_median_mm: Option<Estimate>,
    pub corner_p90_mm: Option<Estimate>,
}

/// The whole evaluation: per level, overall, false discs, intervals, every disc.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionReport {
    pub slices: usize,
    pub levels: Vec<LevelReport>,
    pub overall: LevelReport,
    pub false_discs: usize,
    /// False discs per true disc.
    pub false_rate: f64,
    pub intervals: Intervals,
    pub per_slice: Vec<SliceOutcome>,
}

fn overall(slices: &[&SliceOutcome]) -> (LevelReport, f64) {
    let r = LevelReport::of("all".into(), slices.iter().flat_map(|s| &s.discs));
    let false_discs: usize = slices.iter().map(|s| s.false_discs()).sum();
    let rate = false_discs as f64 / r.discs.max(1) as f64;
    (r, rate)
}

impl DetectionReport {
    pub fn new(per_slice: Vec<SliceOutcome>) -> DetectionReport {
        let levels = Level::ALL
            .iter()
            .map(|l| {
                let sel = per_slice
                    .iter()
                    .flat_map(|s| &s.discs)
                    .filter(|o| o.level == *l);
                LevelReport::of(l.id().to_string(), sel)
            })
            .collect();
        let all: Vec<&SliceOutcome> = per_slice.iter().collect();
        let (overall_row, false_rate) = overall(&all);
        let subjects: Vec<&str> = per_slice.iter().map(|s| s.subject.as_str()).collect();
        let groups = subject_groups(&subjects);
        let mut draws: [Vec<f64>; 4] = Default::default();
        for idx in subject_resamples(&groups, BOOTSTRAP, 1) {
            let pick: Vec<&SliceOutcome> = idx.iter().map(|&i| &per_slice[i]).collect();
            let (r, f) = overall(&pick);
            draws[0].push(r.right_level_rate);
            draws[1].push(f);
            draws[2].extend(r.corner_median_mm);
            draws[3].extend(r.corner_p90_mm);
        }
        let [d0, d1, d2, d3] = draws;
        let intervals = Intervals {
            subjects: groups.len(),
            right_level_rate: Estimate::from_samples(overall_row.right_level_rate, d0),
            false_rate: Estimate::from_samples(false_rate, d1),
            corner_median_mm: overall_row
                .corner_median_mm
                .map(|p| Estimate::from_samples(p, d2)),
            corner_p90_mm: overall_row
                .corner_p90_mm
                .map(|p| Estimate::from_samples(p, d3)),
        };
        DetectionReport {
            slices: per_slice.len(),
            levels,
            false_discs: per_slice.iter().map(|s| s.false_discs()).sum(),
            false_rate,
            overall: overall_row,
            intervals,
            per_slice,
        }
    }

    /// One figure to pick the best training epoch by: right-level rate, less a penalty for
    /// false discs and for corner error, 0.03 per pixel of median (capped at 10 pixels), so
    /// one pixel weighs about as much as naming 3 % of the discs wrong: corners decide the
    /// classifier's ROI, and the classes change when they move by a few pixels.
    pub fn score(&self) -> f64 {
        self.overall.right_level_rate
            - self.false_rate
            - 0.3 * self.overall.corner_median_px.unwrap_or(10.0).min(10.0) / 10.0
    }
}

/// Every image of a manifest with its true discs (level and corners), decoded once, in the
/// order images first appear. `on_bytes` sees the manifest text, then each image's bytes (the
/// trainer hashes them). Spacing comes from the optional `spacing_mm` column, else the image
/// (DICOM). Rows without a level are refused: detection is judged level by level.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_truth(
    manifest: &std::path::Path,
    mut on_bytes: impl FnMut(&[u8]),
) -> crate::Result<Vec<(SliceTruth, crate::Slice)>> {
    use crate::error::Error;
    use crate::image::decode::{decode, DecodeOptions};
    let name = manifest.display().to_string();
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    on_bytes(text.as_bytes());
    let rows = crate::manifest::parse(&name, &text)?;
    let spacings = crate::manifest::spacing_column(&name, &text)?;
    let base = manifest.parent().unwrap_or(std::path::Path::new("."));
    let mut out: Vec<(SliceTruth, crate::Slice)> = Vec::new();
    for (k, (r, spacing)) in rows.iter().zip(spacings).enumerate() {
        let level = r.level.ok_or_else(|| Error::Manifest {
            file: name.clone(),
            row: k + 2,
            field: "level".into(),
            reason: "empty; detection is trained and judged per level, so every disc needs its level (L1L2 … L5S1)".into(),
        })?;
        if let Some((t, _)) = out.iter_mut().find(|(t, _)| t.image == r.image) {
            t.discs.push((level, r.corners));
            continue;
        }
        let path = base.join(&r.image);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        on_bytes(&bytes);
        let slice = decode(
            &bytes,
            &path.display().to_string(),
            DecodeOptions::default(),
        )?;
        let truth = SliceTruth {
            image: r.image.clone(),
            subject: r.subject.clone(),
            spacing_mm: spacing.or(slice.spacing_mm.map(|s| 0.5 * (s.0 + s.1))),
            discs: vec![(level, r.corners)],
        };
        out.push((truth, slice));
    }
    Ok(out)
}

/// Run `detector` on every slice and match what it finds to the truth.
pub fn evaluate(
    detector: &crate::model::detector::Detector,
    slices: &[(SliceTruth, crate::Slice)],
) -> crate::Result<DetectionReport> {
    let per_slice = slices
        .iter()
        .map(|(truth, slice)| Ok(match_slice(truth, &detector.detect(slice)?)))
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(DetectionReport::new(per_slice))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc(y: f64) -> [Point; 4] {
        [
            Point::new(100.0, y - 5.0),
            Point::new(140.0, y - 5.0),
            Point::new(100.0, y + 5.0),
            Point::new(140.0, y + 5.0),
        ]
    }

    #[test]
    fn right_wrong_missed_and_false_discs_by_hand() {
        let truth = SliceTruth {
            image: "a".into(),
            subject: "s".into(),
            spacing_mm: Some(0.5),
            discs: vec![
                (Level::L4L5, disc(100.0)),
                (Level::L5S1, disc(140.0)),
                (Level::L3L4, disc(60.0)),
            ],
        };
        let shift = |c: [Point; 4], dx: f64| c.map(|p| Point::new(p.x + dx, p.y));
        let found = vec![
            DetectedDisc {
                level: Some("L4L5".into()),
                score: 0.9,
                corners: shift(disc(100.0), 2.0),
            },
            DetectedDisc {
                level: Some("L4L5".into()),
                score: 0.9,
                corners: disc(140.0),
            },
            DetectedDisc {
                level: Some("L2L3".into()),
                score: 0.5,
                corners: disc(300.0),
            },
            DetectedDisc {
                level: Some("T12L1".into()),
                score: 0.5,
                corners: disc(400.0),
            },
        ];
        let outcome = match_slice(&truth, &found);
        assert_eq!(
            outcome.false_discs(),
            1,
            "the L2L3 far away; T12L1 is not counted"
        );
        let r = DetectionReport::new(vec![outcome]);
        assert_eq!(
            (
                r.overall.right_level,
                r.overall.wrong_level,
                r.overall.missed
            ),
            (1, 1, 1)
        );
        assert_eq!(r.levels[3].right_level, 1);
        assert_eq!(r.levels[4].wrong_level, 1);
        assert_eq!(r.levels[2].missed, 1);
        // Eight corners: four 2 px off, four exact -> median 1 (nearest rank: 4th of 8 is 0).
        assert_eq!(r.overall.corner_p90_px, Some(2.0));
        assert_eq!(r.overall.corner_p90_mm, Some(1.0));
    }

    #[test]
    fn intervals_resample_subjects_and_bracket_the_point() {
        // Ten subjects, one disc each: seven found at the right level, three missed.
        let slices: Vec<SliceOutcome> = (0..10)
            .map(|k| {
                let truth = SliceTruth {
                    image: format!("s{k}"),
                    subject: format!("p{k}"),
                    spacing_mm: Some(1.0),
                    discs: vec![(Level::L5S1, disc(100.0))],
                };
                let found: Vec<DetectedDisc> = (k < 7)
                    .then(|| DetectedDisc {
                        level: Some("L5S1".into()),
                        score: 0.9,
                        corners: disc(100.0),
                    })
                    .into_iter()
                    .collect();
                match_slice(&truth, &found)
            })
            .collect();
        let r = DetectionReport::new(slices);
        let e = r.intervals.right_level_rate;
        assert_eq!((r.intervals.subjects, e.point), (10, 0.7));
        assert!(
            e.lo < 0.7 && e.hi > 0.7 && e.lo >= 0.2 && e.hi <= 1.0,
            "{e:?}"
        );
        assert_eq!(r.intervals.false_rate.hi, 0.0);
    }

    #[test]
    fn median_and_p90_by_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(|x| x as f64).collect();
        assert_eq!(median_p90(&v), Some((5.0, 9.0)));
        assert_eq!(median_p90(&[]), None);
    }
}
