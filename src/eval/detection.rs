//! How well a detector finds the discs of slices whose corners are known: per level, discs
//! found with the right level, found with a wrong one, missed; false discs; and the corner
//! error (median and 90th percentile, in pixels and, where the spacing is known, millimetres).
//!
//! A true disc is found when a detected disc's centre lies within half the true disc's
//! endplate width of its centre; each detected disc matches at most one true disc, nearest
//! first. Only lumbar levels count: thoracic discs the detector reports are neither right nor
//! false, since the truth (SPIDER corners, phantom lumbar discs) does not cover them.

use crate::class::Level;
use crate::disc::detection::{spec_order, DetectedDisc};
use crate::disc::geometry::Point;
use serde::Serialize;

/// The truth for one slice.
#[derive(Debug, Clone)]
pub struct SliceTruth {
    pub image: String,
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
    pub found: bool,
    /// Mean of the four corner distances, in pixels and mm.
    pub corner_error_px: Option<f64>,
    pub corner_error_mm: Option<f64>,
    /// Each corner's distance in pixels (SPEC order).
    pub corner_errors_px: Option<[f64; 4]>,
    /// The matched detection's corners.
    #[serde(skip)]
    pub detected: Option<[Point; 4]>,
}

fn center(c: &[Point; 4]) -> Point {
    Point::new(
        c.iter().map(|p| p.x).sum::<f64>() / 4.0,
        c.iter().map(|p| p.y).sum::<f64>() / 4.0,
    )
}

fn dist(a: Point, b: Point) -> f64 {
    (a.x - b.x).hypot(a.y - b.y)
}

/// Match one slice's detections to its truth. Returns the outcome of every true disc and the
/// number of false discs (lumbar-level detections matching no true disc).
pub fn match_slice(truth: &SliceTruth, found: &[DetectedDisc]) -> (Vec<DiscOutcome>, usize) {
    let mut pairs = Vec::new();
    for (t, (_, tc)) in truth.discs.iter().enumerate() {
        let tc = spec_order(*tc);
        let w = 0.5 * (dist(tc[0], tc[1]) + dist(tc[2], tc[3]));
        for (f, d) in found.iter().enumerate() {
            let dd = dist(center(&tc), d.center());
            if dd <= 0.5 * w {
                pairs.push((dd, t, f));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut t_used, mut f_used) = (vec![None; truth.discs.len()], vec![false; found.len()]);
    for (_, t, f) in pairs {
        if t_used[t].is_none() && !f_used[f] {
            t_used[t] = Some(f);
            f_used[f] = true;
        }
    }
    let outcomes = truth
        .discs
        .iter()
        .zip(&t_used)
        .map(|((level, tc), m)| {
            let tc = spec_order(*tc);
            let mut o = DiscOutcome {
                image: truth.image.clone(),
                level: *level,
                found_as: None,
                found: m.is_some(),
                corner_error_px: None,
                corner_error_mm: None,
                corner_errors_px: None,
                detected: None,
            };
            if let Some(f) = m {
                let d = &found[*f];
                let e: [f64; 4] = std::array::from_fn(|k| dist(tc[k], d.corners[k]));
                let mean = e.iter().sum::<f64>() / 4.0;
                o.found_as = d.level.clone();
                o.corner_errors_px = Some(e);
                o.corner_error_px = Some(mean);
                o.corner_error_mm = truth.spacing_mm.map(|s| mean * s);
                o.detected = Some(d.corners);
            }
            o
        })
        .collect();
    let false_discs = found
        .iter()
        .zip(&f_used)
        .filter(|(d, used)| !**used && d.lumbar_level().is_some())
        .count();
    (outcomes, false_discs)
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

/// The whole evaluation: per level, overall, false discs.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionReport {
    pub slices: usize,
    pub levels: Vec<LevelReport>,
    pub overall: LevelReport,
    pub false_discs: usize,
    /// False discs per true disc.
    pub false_rate: f64,
    pub discs: Vec<DiscOutcome>,
}

impl DetectionReport {
    pub fn new(outcomes: Vec<DiscOutcome>, false_discs: usize, slices: usize) -> DetectionReport {
        let row = |name: String, sel: &[&DiscOutcome]| {
            let right = sel
                .iter()
                .filter(|o| o.found && o.found_as.as_deref() == Some(o.level.id()))
                .count();
            let found = sel.iter().filter(|o| o.found).count();
            let px: Vec<f64> = sel
                .iter()
                .filter_map(|o| o.corner_errors_px)
                .flatten()
                .collect();
            let mm: Vec<f64> = sel
                .iter()
                .filter(|o| o.corner_error_mm.is_some())
                .filter_map(|o| {
                    let s = o.corner_error_mm? / o.corner_error_px?.max(1e-12);
                    Some(o.corner_errors_px?.map(|e| e * s))
                })
                .flatten()
                .collect();
            let (pm, p9) = median_p90(&px).unzip();
            let (mm_m, mm_9) = median_p90(&mm).unzip();
            LevelReport {
                level: name,
                discs: sel.len(),
                right_level: right,
                wrong_level: found - right,
                missed: sel.len() - found,
                right_level_rate: right as f64 / sel.len().max(1) as f64,
                corner_median_px: pm,
                corner_p90_px: p9,
                corner_median_mm: mm_m,
                corner_p90_mm: mm_9,
            }
        };
        let levels = Level::ALL
            .iter()
            .map(|l| {
                let sel: Vec<&DiscOutcome> = outcomes.iter().filter(|o| o.level == *l).collect();
                row(l.id().to_string(), &sel)
            })
            .collect();
        let all: Vec<&DiscOutcome> = outcomes.iter().collect();
        let overall = row("all".into(), &all);
        DetectionReport {
            slices,
            levels,
            false_rate: false_discs as f64 / outcomes.len().max(1) as f64,
            overall,
            false_discs,
            discs: outcomes,
        }
    }

    /// One figure to pick the best training epoch by: right-level rate, less a penalty for
    /// false discs and for corner error (per 10 pixels).
    pub fn score(&self) -> f64 {
        self.overall.right_level_rate
            - self.false_rate
            - 0.1 * self.overall.corner_median_px.unwrap_or(10.0) / 10.0
    }
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
        let (o, false_discs) = match_slice(&truth, &found);
        assert_eq!(false_discs, 1, "the L2L3 far away; T12L1 is not counted");
        let r = DetectionReport::new(o, false_discs, 1);
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
    fn median_and_p90_by_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(|x| x as f64).collect();
        assert_eq!(median_p90(&v), Some((5.0, 9.0)));
        assert_eq!(median_p90(&[]), None);
    }
}
