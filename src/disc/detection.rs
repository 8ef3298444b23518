//! From the detector network's output maps to discs with levels: peaks of the disc-centre map,
//! four corners regressed from each peak, then the chain of discs counted up from the sacrum.
//! Pure geometry, no network: the same code runs natively, in the page and in the tests.
//!
//! The maps are on a grid of `stride`-pixel cells over the detector's input: a disc-centre
//! logit, an "L5S1" logit (is this the disc just above the sacrum?) and eight corner offsets
//! from the cell centre, in units of `offset_unit` input pixels, in the order upper endplate
//! (anterior, posterior), lower endplate (anterior, posterior).

use crate::class::Level;
use crate::disc::geometry::{centre, DiscFrame, Point};
use serde::{Serialize, Serializer};

/// One disc found on a slice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectedDisc {
    /// `L5S1` … `L1L2`, then `T12L1`, `T11T12`, … counting up from the sacrum; `None` when no
    /// sacrum was found, so levels cannot be named.
    pub level: Option<String>,
    /// The disc-centre probability at its peak, in [0, 1].
    pub score: f32,
    /// SPEC order: the upper endplate's corners (smaller x first), then the lower endplate's.
    #[serde(serialize_with = "corner_pairs")]
    pub corners: [Point; 4],
}

impl DetectedDisc {
    /// The lumbar level, for discs the classifier takes (`T12L1` and above are not).
    pub fn lumbar_level(&self) -> Option<Level> {
        self.level.as_deref().and_then(|l| l.parse().ok())
    }

    pub fn center(&self) -> Point {
        centre(&self.corners)
    }

    /// The same disc on the slice turned top to bottom (`height` rows), corners in SPEC order.
    pub fn flipped_vertically(&self, height: usize) -> DetectedDisc {
        DetectedDisc {
            corners: spec_order(flip_corners(&self.corners, height)),
            ..self.clone()
        }
    }
}

fn corner_pairs<S: Serializer>(c: &[Point; 4], s: S) -> Result<S::Ok, S::Error> {
    c.map(|p| [p.x, p.y]).serialize(s)
}

/// The name of the disc `k` discs above the sacrum (0 = `L5S1`).
pub fn level_name(k: usize) -> String {
    match k {
        0..=4 => Level::ALL[4 - k].id().to_string(),
        5 => "T12L1".into(),
        6..=16 => format!("T{}T{}", 17 - k, 18 - k),
        _ => format!("disc{k}"),
    }
}

/// The network's output for one view, plane by plane, each `grid x grid` cells.
#[derive(Debug, Clone, Copy)]
pub struct Maps<'a> {
    pub grid: usize,
    /// Input pixels per cell.
    pub stride: f64,
    pub center: &'a [f32],
    pub l5s1: &'a [f32],
    /// Eight planes: dx, dy of each corner in SPEC order.
    pub offsets: &'a [f32],
    /// With corner maps, six planes: the upper and the lower endplates' corner heatmaps, then
    /// dx, dy of an upper corner and of a lower corner from their cell's centre, in cells.
    pub corners: Option<&'a [f32]>,
}

/// Decoding settings, kept in the detector's card.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct DecodeParams {
    /// Input pixels per unit of a regressed offset.
    pub offset_unit: f64,
    /// Lowest disc-centre probability that counts as a disc.
    pub threshold: f32,
    /// Lowest L5S1 probability that counts as the sacrum being found.
    pub l5s1_threshold: f32,
    /// Whether the network has corner maps (absent from the cards of detectors made before
    /// them, which read as `false`).
    #[serde(default)]
    pub corner_maps: bool,
    /// With corner maps: lowest corner-heatmap probability that moves a regressed corner onto
    /// that peak.
    #[serde(default = "default_corner_threshold")]
    pub corner_threshold: f32,
    /// With corner maps: how far from its regressed position a corner's peak is looked for, as
    /// a fraction of the disc's width (the other corner of the same endplate is a whole width
    /// away, the next disc's a vertebral body).
    #[serde(default = "default_corner_reach")]
    pub corner_reach: f64,
    /// Whether each lumbar disc's corners are averaged over closer views of the lumbar spine
    /// ([`corner_view_groups`], [`mean_corners`]), the closer view of all of them also adding
    /// a lowest disc the chain missed ([`add_missed_lowest_disc`]): three more network runs
    /// per slice for corners a tenth to a seventh closer on real slices. Absent from cards
    /// written before it (read as `false`, so such a file decodes as it did); new detectors
    /// have it on.
    #[serde(default)]
    pub corner_views: bool,
}

fn default_corner_threshold() -> f32 {
    0.1
}

fn default_corner_reach() -> f64 {
    0.25
}

impl Default for DecodeParams {
    fn default() -> Self {
        DecodeParams {
            offset_unit: 16.0,
            threshold: 0.35,
            l5s1_threshold: 0.3,
            corner_maps: true,
            corner_threshold: default_corner_threshold(),
            corner_reach: default_corner_reach(),
            corner_views: true,
        }
    }
}

/// A disc before levels are named, in whatever coordinates its corners were mapped to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub score: f32,
    pub l5s1: f32,
    /// Regressed from the centre: they move together with the disc, so its frame (axis, width)
    /// comes from them, and so does the level chain.
    pub corners: [Point; 4],
    /// With corner maps, the same corners moved onto their peaks: where the disc is reported.
    pub placed: Option<[Point; 4]>,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Every local maximum of the centre map above the threshold, its corners in input pixels: the
/// 3 x 3 cells around the peak each regress all four corners, averaged with their centre
/// probabilities as weights (the training target covers those cells too).
pub fn candidates(maps: &Maps, p: &DecodeParams) -> Vec<Candidate> {
    let g = maps.grid;
    let plane = g * g;
    if maps.center.len() < plane || maps.l5s1.len() < plane || maps.offsets.len() < 8 * plane {
        return Vec::new();
    }
    let prob = |i: usize, j: usize| sigmoid(maps.center[j * g + i]);
    let mut out = Vec::new();
    for j in 0..g {
        for i in 0..g {
            let s = prob(i, j);
            if s.is_nan() || s < p.threshold {
                continue;
            }
            let mut is_peak = true;
            let (mut wsum, mut acc, mut l5) = (0.0f64, [[0.0f64; 2]; 4], 0.0f32);
            for nj in j.saturating_sub(1)..(j + 2).min(g) {
                for ni in i.saturating_sub(1)..(i + 2).min(g) {
                    let q = prob(ni, nj);
                    // Ties go to the first cell in scan order, so a plateau gives one peak.
                    if q > s || (q == s && (nj, ni) < (j, i)) {
                        is_peak = false;
                    }
                    l5 = l5.max(sigmoid(maps.l5s1[nj * g + ni]));
                    let w = q as f64;
                    let (cx, cy) = (
                        (ni as f64 + 0.5) * maps.stride,
                        (nj as f64 + 0.5) * maps.stride,
                    );
                    for (k, a) in acc.iter_mut().enumerate() {
                        let dx = maps.offsets[(2 * k) * plane + nj * g + ni] as f64;
                        let dy = maps.offsets[(2 * k + 1) * plane + nj * g + ni] as f64;
                        a[0] += w * (cx + dx * p.offset_unit);
                        a[1] += w * (cy + dy * p.offset_unit);
                    }
                    wsum += w;
                }
            }
            if is_peak {
                let corners = acc.map(|a| Point::new(a[0] / wsum, a[1] / wsum));
                let placed = maps.corners.map(|c| {
                    let mut placed = corners;
                    snap_corners(&mut placed, c, g, maps.stride, p);
                    placed
                });
                out.push(Candidate {
                    score: s,
                    l5s1: l5,
                    corners,
                    placed,
                });
            }
        }
    }
    out
}

/// Move each regressed corner onto the strongest peak of its endplate's corner heatmap within
/// `p.corner_reach` disc widths, at that peak's own sub-cell offset; a corner without such a
/// peak keeps its regressed place. Corners 0 and 1 are the upper endplate's, 2 and 3 the lower's,
/// as the network regresses them.
fn snap_corners(corners: &mut [Point; 4], maps: &[f32], g: usize, stride: f64, p: &DecodeParams) {
    let plane = g * g;
    if maps.len() < 6 * plane {
        return;
    }
    let width = 0.5 * (corners[0].distance(corners[1]) + corners[2].distance(corners[3]));
    let reach = (p.corner_reach * width / stride).max(1.0);
    let r = reach.ceil() as isize;
    for (k, corner) in corners.iter_mut().enumerate() {
        let e = k / 2; // 0: upper endplate, 1: lower
        let heat = &maps[e * plane..(e + 1) * plane];
        let at = |i: isize, j: isize| -> Option<f32> {
            (i >= 0 && j >= 0 && (i as usize) < g && (j as usize) < g)
                .then(|| sigmoid(heat[j as usize * g + i as usize]))
        };
        let (ci, cj) = (
            (corner.x / stride - 0.5).round() as isize,
            (corner.y / stride - 0.5).round() as isize,
        );
        let mut best: Option<(f32, isize, isize)> = None;
        for j in cj - r..=cj + r {
            for i in ci - r..=ci + r {
                let Some(h) = at(i, j) else { continue };
                let (cx, cy) = ((i as f64 + 0.5) * stride, (j as f64 + 0.5) * stride);
                let far = (cx - corner.x).hypot(cy - corner.y) > reach * stride;
                if far || h.is_nan() || h < p.corner_threshold {
                    continue;
                }
                if best.is_none_or(|b| h > b.0) {
                    best = Some((h, i, j));
                }
            }
        }
        if let Some((_, i, j)) = best {
            let cell = j as usize * g + i as usize;
            let off = &maps[(2 + 2 * e) * plane..];
            let (dx, dy) = (off[cell] as f64, off[plane + cell] as f64);
            if dx.is_finite() && dy.is_finite() {
                *corner = Point::new(
                    (i as f64 + 0.5 + dx.clamp(-1.5, 1.5)) * stride,
                    (j as f64 + 0.5 + dy.clamp(-1.5, 1.5)) * stride,
                );
            }
        }
    }
}

/// Corners on a slice of `height` rows turned top to bottom, in the same order.
pub fn flip_corners(corners: &[Point; 4], height: usize) -> [Point; 4] {
    corners.map(|p| Point::new(p.x, height as f64 - p.y))
}

/// SPEC corner order: the upper endplate (smaller mean y) first, each pair with smaller x first.
pub fn spec_order(c: [Point; 4]) -> [Point; 4] {
    let pair = |a: Point, b: Point| if a.x <= b.x { [a, b] } else { [b, a] };
    let (mut up, mut low) = (pair(c[0], c[1]), pair(c[2], c[3]));
    if up[0].y + up[1].y > low[0].y + low[1].y {
        std::mem::swap(&mut up, &mut low);
    }
    [up[0], up[1], low[0], low[1]]
}

/// How far apart neighbouring discs are on this slice: the median distance from each disc's
/// centre to the nearest other's; 0 with fewer than three discs.
///
/// Disc width alone misjudges the step on some real slices: on an off-centre sagittal slice,
/// or a tall patient's, the discs look narrow against the vertebral bodies, and one in twelve of
/// SPIDER's steps between hand-marked discs is over 1.4 widths (up to 2.4), so a chain reaching
/// 1.4 widths stopped at L5S1 on eight of its slices. A disc missed leaves a gap of two steps,
/// which stays out of 1.45 steps' reach.
fn typical_spacing(kept: &[(Candidate, DiscFrame)]) -> f64 {
    if kept.len() < 3 {
        return 0.0;
    }
    let mut nearest: Vec<f64> = kept
        .iter()
        .enumerate()
        .map(|(i, (_, a))| {
            kept.iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, (_, b))| a.center.distance(b.center))
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    nearest.sort_by(f64::total_cmp);
    nearest[nearest.len() / 2]
}

/// Name levels by counting up from the sacrum and drop what is not on the spine.
///
/// Duplicates (centres closer than 0.4 disc widths) keep the higher score. The disc with the
/// highest L5S1 probability, if above the threshold, is L5S1; from it the chain climbs to the
/// nearest disc above along the spine's axis there (the mean of the two discs' axes):
/// - at least 0.4 disc widths away, and at most 1.4 widths or 1.45 times the slice's
///   [`typical_spacing`], whichever is further (but never past 2.5 widths), and never past 1.45
///   times the previous step or the typical spacing, whichever is longer;
/// - at most 0.7 widths aside.
///
/// It stops at the first gap: a level skipped would misname every disc above, so discs past a
/// gap are dropped rather than guessed. Without a sacrum the chain starts from the lowest disc,
/// levels stay unnamed, and a lone disc is dropped as likely noise.
pub fn name_levels(mut cands: Vec<Candidate>, p: &DecodeParams) -> Vec<DetectedDisc> {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Each kept disc with its frame, computed once; corners that make no disc (coincident,
    // collinear, not finite) are no disc.
    let mut kept: Vec<(Candidate, DiscFrame)> = Vec::new();
    for c in cands {
        let Ok(f) = DiscFrame::of(&c.corners) else {
            continue;
        };
        let dup = kept
            .iter()
            .any(|(_, k)| k.center.distance(f.center) < 0.4 * f.width.max(k.width));
        if !dup {
            // The frame above (so the chain) is the regressed corners'; the disc is reported at
            // its placed corners when they still frame a disc.
            let reported = c
                .placed
                .filter(|q| DiscFrame::of(q).is_ok())
                .unwrap_or(c.corners);
            let corners = spec_order(reported);
            kept.push((Candidate { corners, ..c }, f));
        }
    }
    if kept.is_empty() {
        return Vec::new();
    }
    let sacrum = (0..kept.len())
        .filter(|&i| kept[i].0.l5s1 >= p.l5s1_threshold)
        .max_by(|&a, &b| kept[a].0.l5s1.total_cmp(&kept[b].0.l5s1));
    let start = sacrum.unwrap_or_else(|| {
        (0..kept.len())
            .max_by(|&a, &b| kept[a].1.center.y.total_cmp(&kept[b].1.center.y))
            .expect("not empty")
    });
    let spacing = typical_spacing(&kept);
    let mut used = vec![false; kept.len()];
    let mut chain = vec![start];
    used[start] = true;
    let mut last_step = f64::INFINITY;
    loop {
        let f = &kept[*chain.last().expect("chain starts with one")].1;
        let reach = (1.4 * f.width)
            .max((1.45 * spacing).min(2.5 * f.width))
            .min(1.45 * last_step.max(spacing));
        let next = (0..kept.len())
            .filter(|&j| !used[j])
            .filter_map(|j| {
                let g = &kept[j].1;
                let d = Point::new(g.center.x - f.center.x, g.center.y - f.center.y);
                // Up the spine is against v, which points to the feet. The spine between two
                // discs runs along the mean of their axes: L5S1 leans up to 40° more than the
                // disc above it, which sits well aside of L5S1's own axis.
                let v = Point::new(f.v.x + g.v.x, f.v.y + g.v.y);
                let n = v.x.hypot(v.y);
                let v = if n > 1e-6 {
                    Point::new(v.x / n, v.y / n)
                } else {
                    f.v
                };
                let along = -(d.x * v.x + d.y * v.y);
                let aside = (d.x * v.y - d.y * v.x).abs();
                (along >= 0.4 * f.width && along <= reach && aside <= 0.7 * f.width)
                    .then_some((j, along))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((j, along)) = next else { break };
        last_step = along;
        used[j] = true;
        chain.push(j);
    }
    if sacrum.is_none() && chain.len() < 2 {
        return Vec::new();
    }
    chain
        .iter()
        .enumerate()
        .rev()
        .map(|(k, &i)| DetectedDisc {
            level: sacrum.map(|_| level_name(k)),
            score: kept[i].0.score,
            corners: kept[i].0.corners,
        })
        .collect()
}

/// The lumbar discs to look at again, more closely, for their corners: all of them, and with
/// four or more also the upper and the lower half (overlapping by a disc), so that each crop
/// fills the detector's input with fewer discs and the corners are placed at a finer scale.
/// `discs` top to bottom; thoracic discs are left to the views that found them. The last
/// group, when there is one, is all the lumbar discs.
pub fn corner_view_groups(discs: &[DetectedDisc]) -> Vec<Vec<DetectedDisc>> {
    let lumbar: Vec<DetectedDisc> = discs
        .iter()
        .filter(|d| d.lumbar_level().is_some())
        .cloned()
        .collect();
    let n = lumbar.len();
    match n {
        0 | 1 => Vec::new(),
        2 | 3 => vec![lumbar],
        _ => vec![
            lumbar[..n / 2 + 1].to_vec(),
            lumbar[n / 2 - 1..].to_vec(),
            lumbar,
        ],
    }
}

/// How many discs above the sacrum a level name is (`L5S1` 0, `L4L5` 1, …): [`level_name`]'s
/// inverse.
pub fn from_sacrum(level: &str) -> Option<usize> {
    (0..=16).find(|&k| level_name(k) == level)
}

/// Add the lowest disc when the first views' chain missed it: `closer` (a closer view of all
/// the lumbar discs, its own chain) names as L5S1 a disc below the kept L5S1 that no kept disc
/// covers. That disc becomes L5S1 and every named level above moves up by one. `discs` top to
/// bottom; the added disc comes last. Returns the added disc's index. A chain that started
/// one disc too high names every level wrong, and the closer view sees the sacrum at a finer
/// scale; it never renames a disc the kept chain has.
pub fn add_missed_lowest_disc(
    discs: &mut Vec<DetectedDisc>,
    closer: &[DetectedDisc],
) -> Option<usize> {
    let is_l5s1 = |d: &&DetectedDisc| d.level.as_deref() == Some("L5S1");
    let kept = discs.iter().find(is_l5s1)?;
    let seen = closer.iter().find(is_l5s1)?;
    let below = seen.center().y > kept.center().y + same_disc_reach(kept);
    if !below || nearest_within(seen, discs).is_some() {
        return None;
    }
    let seen = seen.clone();
    for d in discs.iter_mut() {
        if let Some(k) = d.level.as_deref().and_then(from_sacrum) {
            d.level = Some(level_name(k + 1));
        }
    }
    discs.push(seen);
    Some(discs.len() - 1)
}

/// How close two views' centres of one disc are: 0.3 of its width (its neighbours are a whole
/// disc height and more away).
fn same_disc_reach(disc: &DetectedDisc) -> f64 {
    0.3 * disc.corners[0].distance(disc.corners[1])
}

/// The disc of `view` that is `disc` seen again: the nearest whose centre is within
/// [`same_disc_reach`].
fn nearest_within<'a>(disc: &DetectedDisc, view: &'a [DetectedDisc]) -> Option<&'a DetectedDisc> {
    let (c, reach) = (disc.center(), same_disc_reach(disc));
    view.iter()
        .map(|m| (m.center().distance(c), m))
        .filter(|(d, _)| *d < reach)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, m)| m)
}

/// `disc`'s corners averaged with those of the same disc in other views of the slice (its
/// centre within 0.3 of its width; the nearest if several are). Each view places a corner
/// with its own error, so the mean is steadier than any one view. A view's levels are not
/// used: a crop without the sacrum names none.
pub fn mean_corners(disc: &DetectedDisc, views: &[Vec<DetectedDisc>]) -> [Point; 4] {
    let mut sum = disc.corners.map(|p| (p.x, p.y));
    let mut n = 1.0;
    for m in views.iter().filter_map(|v| nearest_within(disc, v)) {
        for (s, p) in sum.iter_mut().zip(m.corners) {
            s.0 += p.x;
            s.1 += p.y;
        }
        n += 1.0;
    }
    sum.map(|(x, y)| Point::new(x / n, y / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straight spine of `n` level discs, 40 px wide, 36 px apart, the lowest at y = 400.
    fn spine(n: usize) -> Vec<Candidate> {
        spine_of(n, 40.0, 36.0)
    }

    /// A straight spine of `n` level discs `width` px wide and `step` px apart, the lowest at
    /// y = 400.
    fn spine_of(n: usize, width: f64, step: f64) -> Vec<Candidate> {
        (0..n)
            .map(|k| {
                let y = 400.0 - step * k as f64;
                Candidate {
                    score: 0.9,
                    l5s1: if k == 0 { 0.8 } else { 0.05 },
                    corners: [
                        Point::new(200.0, y - 4.0),
                        Point::new(200.0 + width, y - 4.0),
                        Point::new(200.0, y + 4.0),
                        Point::new(200.0 + width, y + 4.0),
                    ],
                    placed: None,
                }
            })
            .collect()
    }

    fn names(discs: &[DetectedDisc]) -> Vec<String> {
        discs.iter().map(|d| d.level.clone().unwrap()).collect()
    }

    #[test]
    fn narrow_discs_far_apart_still_chain_up_but_a_missed_one_stops_the_chain() {
        // SPIDER has slices whose steps are twice the discs' width (spider_187): 1.4 widths
        // alone found L5S1 and nothing above it.
        let c = spine_of(5, 40.0, 84.0);
        let discs = name_levels(c.clone(), &DecodeParams::default());
        assert_eq!(names(&discs), ["L1L2", "L2L3", "L3L4", "L4L5", "L5S1"]);
        let mut gap = c;
        gap.remove(2);
        let discs = name_levels(gap, &DecodeParams::default());
        assert_eq!(names(&discs), ["L4L5", "L5S1"]);
    }

    #[test]
    fn a_short_first_step_does_not_stop_the_chain_at_the_next() {
        // spider_38: from a tilted L5S1 the step to L4L5 measures 49 px along the spine, the
        // next 82 px; 1.45 times the last step alone (70 px) stopped the chain at L4L5.
        let mut c = spine_of(5, 52.0, 70.0);
        for d in &mut c[1..] {
            d.corners = d.corners.map(|p| Point::new(p.x, p.y + 25.0));
        }
        let discs = name_levels(c, &DecodeParams::default());
        assert_eq!(names(&discs), ["L1L2", "L2L3", "L3L4", "L4L5", "L5S1"]);
    }

    #[test]
    fn a_steep_l5s1_still_finds_the_level_disc_above_it() {
        // spider_15: L5S1 leans 38° and L4L5, 100 px above, sits 54 px aside of its axis.
        let mut c = spine_of(5, 56.0, 100.0);
        let centre = Point::new(228.0, 400.0);
        let (sin, cos) = 38f64.to_radians().sin_cos();
        c[0].corners = c[0].corners.map(|p| {
            let (x, y) = (p.x - centre.x, p.y - centre.y);
            Point::new(centre.x + x * cos + y * sin, centre.y - x * sin + y * cos)
        });
        let discs = name_levels(c, &DecodeParams::default());
        assert_eq!(names(&discs), ["L1L2", "L2L3", "L3L4", "L4L5", "L5S1"]);
    }

    #[test]
    fn levels_follow_the_regressed_corners_and_discs_are_reported_at_the_placed_ones() {
        let mut c = spine(3);
        // The chain and the levels come from the regressed corners; each disc is reported at
        // its placed corners, or at the regressed ones where the placed frame no disc.
        c[1].placed = Some(c[1].corners.map(|p| Point::new(p.x + 2.0, p.y + 1.0)));
        c[2].placed = Some([Point::new(0.0, 0.0); 4]); // no disc: falls back to the regressed
        let discs = name_levels(c.clone(), &DecodeParams::default());
        assert_eq!(names(&discs), ["L3L4", "L4L5", "L5S1"]);
        assert_eq!(discs[1].corners, c[1].placed.unwrap());
        assert_eq!(discs[0].corners, c[2].corners);
        assert_eq!(discs[2].corners, c[0].corners);
    }

    #[test]
    fn levels_count_up_from_the_sacrum_and_come_out_top_to_bottom() {
        let discs = name_levels(spine(7), &DecodeParams::default());
        assert_eq!(
            names(&discs),
            ["T11T12", "T12L1", "L1L2", "L2L3", "L3L4", "L4L5", "L5S1"]
        );
        assert_eq!(discs[6].lumbar_level(), Some(Level::L5S1));
        assert_eq!(discs[0].lumbar_level(), None);
    }

    #[test]
    fn a_gap_stops_the_chain_and_off_spine_blobs_are_dropped() {
        let mut c = spine(5);
        c.remove(3); // no L2L3: L1L2 above the gap must not be named L2L3
        let mut blob = c[0];
        blob.corners = blob.corners.map(|p| Point::new(p.x + 150.0, p.y - 20.0));
        blob.l5s1 = 0.0;
        c.push(blob);
        let discs = name_levels(c, &DecodeParams::default());
        assert_eq!(names(&discs), ["L3L4", "L4L5", "L5S1"]);
    }

    #[test]
    fn without_a_sacrum_levels_stay_unnamed_and_a_lone_disc_is_dropped() {
        let mut c = spine(3);
        c.iter_mut().for_each(|d| d.l5s1 = 0.0);
        let discs = name_levels(c.clone(), &DecodeParams::default());
        assert_eq!(discs.len(), 3);
        assert!(discs.iter().all(|d| d.level.is_none()));
        assert!(name_levels(c[..1].to_vec(), &DecodeParams::default()).is_empty());
    }

    #[test]
    fn duplicates_keep_the_best_score_and_corners_come_in_spec_order() {
        let mut c = spine(2);
        let mut dup = c[0];
        dup.score = 0.5;
        dup.corners = dup.corners.map(|p| Point::new(p.x + 3.0, p.y));
        c.push(dup);
        // Reversed corner order in, SPEC order out.
        c[1].corners = [
            c[1].corners[3],
            c[1].corners[2],
            c[1].corners[1],
            c[1].corners[0],
        ];
        let discs = name_levels(c, &DecodeParams::default());
        assert_eq!(discs.len(), 2);
        assert_eq!(discs[1].score, 0.9);
        let k = discs[0].corners;
        assert!(k[0].x < k[1].x && k[2].x < k[3].x && k[0].y < k[2].y);
    }

    #[test]
    fn one_peak_per_blob_and_corners_from_the_offsets() {
        let g = 8;
        let mut center = vec![-6.0f32; g * g];
        center[3 * g + 4] = 3.0;
        center[3 * g + 5] = 1.0;
        let l5 = vec![-6.0f32; g * g];
        // Every cell says: corners at (-1, -0.5), (1, -0.5), (-1, 0.5), (1, 0.5) units from it.
        let mut off = vec![0.0f32; 8 * g * g];
        for (k, (dx, dy)) in [(-1.0, -0.5), (1.0, -0.5), (-1.0, 0.5), (1.0, 0.5)]
            .into_iter()
            .enumerate()
        {
            off[2 * k * g * g..(2 * k + 1) * g * g].fill(dx);
            off[(2 * k + 1) * g * g..(2 * k + 2) * g * g].fill(dy);
        }
        let maps = Maps {
            grid: g,
            stride: 4.0,
            center: &center,
            l5s1: &l5,
            offsets: &off,
            corners: None,
        };
        let p = DecodeParams::default();
        let c = candidates(&maps, &p);
        assert_eq!(c.len(), 1);
        // Weighted cell centre: cells (4,3) and (5,3) at x = 18 and 22 px, weights ~0.95 / 0.73.
        let w = (sigmoid(3.0) as f64, sigmoid(1.0) as f64);
        let cx = (18.0 * w.0 + 22.0 * w.1) / (w.0 + w.1);
        assert!((c[0].corners[0].x - (cx - 16.0)).abs() < 0.2, "{:?}", c[0]);
        assert!((c[0].corners[3].y - (14.0 + 8.0)).abs() < 0.2, "{:?}", c[0]);

        // With corner maps, a corner moves onto its endplate's peak within reach, at the peak's
        // sub-cell offset; a corner whose map has no peak above the threshold stays regressed,
        // and the lower endplate's map does not move an upper corner.
        let plane = g * g;
        let mut corner_maps = vec![-6.0f32; 6 * plane];
        let (ui, uj) = (0usize, 1usize); // an upper-endplate peak next to corner 0 (~3.4, 6)
        corner_maps[uj * g + ui] = 2.0;
        corner_maps[2 * plane + uj * g + ui] = 0.25; // dx in cells
        corner_maps[3 * plane + uj * g + ui] = -0.5; // dy
        corner_maps[plane + uj * g + ui] = 4.0; // a lower-endplate peak at the same cell
        let snapped = candidates(
            &Maps {
                corners: Some(&corner_maps),
                ..maps
            },
            &p,
        );
        assert_eq!(
            snapped[0].corners, c[0].corners,
            "the regressed corners stay"
        );
        let k = snapped[0].placed.unwrap();
        assert!((k[0].x - (0.5 + 0.25) * 4.0).abs() < 1e-9, "{k:?}");
        assert!((k[0].y - (1.5 - 0.5) * 4.0).abs() < 1e-9, "{k:?}");
        assert_eq!(k[1..], c[0].corners[1..], "no peak of their own in reach");
        // Out of reach (a quarter of the 32 px width = 8 px): a peak at (14, 6), 10 px from
        // corner 0, moves nothing.
        let mut far = vec![-6.0f32; 6 * plane];
        far[uj * g + 3 + ui] = 2.0;
        let k = candidates(
            &Maps {
                corners: Some(&far),
                ..maps
            },
            &p,
        )[0]
        .placed
        .unwrap();
        assert_eq!(k, c[0].corners);
    }
    fn disc_at(level: Option<&str>, y: f64, dx: f64) -> DetectedDisc {
        DetectedDisc {
            level: level.map(str::to_string),
            score: 0.9,
            corners: [
                Point::new(100.0 + dx, y),
                Point::new(140.0 + dx, y),
                Point::new(100.0 + dx, y + 10.0),
                Point::new(140.0 + dx, y + 10.0),
            ],
        }
    }

    #[test]
    fn corner_views_take_the_lumbar_discs_whole_and_in_overlapping_halves() {
        let levels = ["T12L1", "L1L2", "L2L3", "L3L4", "L4L5", "L5S1"];
        let discs: Vec<DetectedDisc> = levels
            .iter()
            .enumerate()
            .map(|(k, l)| disc_at(Some(l), 40.0 * k as f64, 0.0))
            .collect();
        let groups = corner_view_groups(&discs);
        assert_eq!(
            groups.iter().map(|g| names(g)).collect::<Vec<_>>(),
            vec![
                vec!["L1L2", "L2L3", "L3L4"],
                vec!["L2L3", "L3L4", "L4L5", "L5S1"],
                vec!["L1L2", "L2L3", "L3L4", "L4L5", "L5S1"],
            ]
        );
        assert_eq!(corner_view_groups(&discs[3..]).len(), 1);
        assert!(corner_view_groups(&discs[5..]).is_empty());
        let unnamed = vec![disc_at(None, 0.0, 0.0), disc_at(None, 40.0, 0.0)];
        assert!(corner_view_groups(&unnamed).is_empty());
    }

    #[test]
    fn corners_are_averaged_over_the_views_that_found_the_same_disc() {
        let d = disc_at(Some("L4L5"), 100.0, 0.0);
        let views = vec![
            // The same disc 4 px to the right, and its neighbour.
            vec![disc_at(None, 100.0, 4.0), disc_at(None, 140.0, 4.0)],
            // Nothing within 0.3 widths (12 px): not counted.
            vec![disc_at(None, 100.0, 13.0)],
            // Two candidates: the nearer one (2 px left) counts.
            vec![disc_at(None, 100.0, -2.0), disc_at(None, 100.0, 8.0)],
        ];
        let m = mean_corners(&d, &views);
        assert!((m[0].x - (100.0 + 2.0 / 3.0)).abs() < 1e-9, "{m:?}");
        assert!((m[3].x - (140.0 + 2.0 / 3.0)).abs() < 1e-9, "{m:?}");
        assert_eq!(m[2].y, 110.0);
        assert_eq!(mean_corners(&d, &[]), d.corners);
    }
    #[test]
    fn a_lowest_disc_the_chain_missed_is_added_as_l5s1_and_the_levels_above_move_up() {
        let levels = ["L2L3", "L3L4", "L4L5", "L5S1"];
        let kept = |levels: &[&str]| -> Vec<DetectedDisc> {
            levels
                .iter()
                .enumerate()
                .map(|(k, l)| disc_at(Some(l), 40.0 * k as f64, 0.0))
                .collect()
        };
        // The closer view sees one more disc below, and calls it L5S1.
        let closer: Vec<DetectedDisc> = ["L3L4", "L4L5", "L5S1"]
            .iter()
            .enumerate()
            .map(|(k, l)| disc_at(Some(l), 80.0 + 40.0 * k as f64, 1.0))
            .collect();
        let mut discs = kept(&levels);
        assert_eq!(add_missed_lowest_disc(&mut discs, &closer), Some(4));
        assert_eq!(names(&discs), ["L1L2", "L2L3", "L3L4", "L4L5", "L5S1"]);
        assert_eq!(discs[4].corners, closer[2].corners);
        assert_eq!(from_sacrum("T12L1"), Some(5));
        assert_eq!(from_sacrum("nonsense"), None);

        // The closer view agrees (its L5S1 is the kept one): nothing changes.
        let mut discs = kept(&levels);
        let agreeing = vec![disc_at(Some("L5S1"), 120.0, 1.0)];
        assert_eq!(add_missed_lowest_disc(&mut discs, &agreeing), None);
        assert_eq!(discs, kept(&levels));
        // Its L5S1 is above the kept one (a kept disc): never renamed.
        let higher = vec![disc_at(Some("L5S1"), 80.0, 1.0)];
        assert_eq!(add_missed_lowest_disc(&mut discs, &higher), None);
        // No sacrum in the closer view, or none kept: nothing to compare.
        let unnamed = vec![disc_at(None, 160.0, 0.0)];
        assert_eq!(add_missed_lowest_disc(&mut discs, &unnamed), None);
        let mut no_sacrum = vec![disc_at(None, 0.0, 0.0), disc_at(None, 40.0, 0.0)];
        assert_eq!(add_missed_lowest_disc(&mut no_sacrum, &closer), None);
    }
}
