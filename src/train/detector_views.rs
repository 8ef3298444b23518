//! What the detector learns from: slices prepared once ([`DetSample`]) and, every draw, a
//! fresh random view of one with its targets on the output grid.

use crate::disc::detection::spec_order;
use crate::disc::geometry::{centre, DiscFrame, Point};
use crate::image::slice::Slice;
use crate::image::warp::{warp, Affine};
use crate::model::detector::{stretched, DetectorInput};
use crate::model::detector_net::STRIDE;
use rand::rngs::SmallRng;
use rand::Rng;

/// One disc's truth on a training slice.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthDisc {
    /// SPEC order.
    pub corners: [Point; 4],
    /// 0 = L5S1, counting up.
    pub from_sacrum: usize,
}

/// A slice prepared for detector training: stretched once, kept in memory.
#[derive(Debug, Clone)]
pub struct DetSample {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
    pub discs: Vec<TruthDisc>,
    /// Real slices: every disc above the topmost marked one is unmarked, so that region is not
    /// scored.
    pub partial_truth: bool,
}

impl DetSample {
    pub fn new(
        slice: &Slice,
        input: &DetectorInput,
        discs: Vec<TruthDisc>,
        partial_truth: bool,
    ) -> DetSample {
        DetSample {
            width: slice.width,
            height: slice.height,
            values: stretched(slice, input),
            discs: discs
                .into_iter()
                .map(|d| TruthDisc {
                    corners: spec_order(d.corners),
                    ..d
                })
                .collect(),
            partial_truth,
        }
    }
}

/// A random view of `s`: mostly a crop around its spine at the second view's scale, sometimes
/// the whole slice as the first view sees it, sometimes a tight partial view.
pub fn random_view(s: &DetSample, size: usize, rng: &mut SmallRng) -> Affine {
    let full = s.width.max(s.height) as f64 / size as f64;
    let angle = rng.random_range(-0.25..0.25);
    let (mut cx, mut cy) = (0.5 * s.width as f64, 0.5 * s.height as f64);
    let u: f64 = rng.random();
    let scale = if s.discs.is_empty() || u < 0.35 {
        cx += rng.random_range(-0.1..0.1) * s.width as f64;
        cy += rng.random_range(-0.1..0.1) * s.height as f64;
        full * rng.random_range(0.85..1.3)
    } else if u < 0.85 {
        let pts: Vec<Point> = s.discs.iter().flat_map(|d| d.corners).collect();
        let (x0, x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.x), a.1.max(p.x)));
        let (y0, y1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.y), a.1.max(p.y)));
        let w = (x1 - x0).max(1.0) / 2.0;
        let side = (x1 - x0 + 2.4 * w.min(60.0)).max(y1 - y0 + 2.6 * w.min(60.0));
        cx = 0.5 * (x0 + x1) + rng.random_range(-0.12..0.12) * side;
        cy = 0.5 * (y0 + y1) + rng.random_range(-0.12..0.12) * side;
        (side / size as f64 * rng.random_range(0.8..1.35)).min(full * 1.3)
    } else {
        let d = &s.discs[rng.random_range(0..s.discs.len())];
        let c = centre(&d.corners);
        cx = c.x + rng.random_range(-40.0..40.0);
        cy = c.y + rng.random_range(-40.0..40.0);
        full * rng.random_range(0.3..0.6)
    };
    let half = 0.5 * size as f64;
    let (sn, cs) = f64::sin_cos(angle);
    let origin = (
        cx - scale * (cs * half - sn * half),
        cy - scale * (sn * half + cs * half),
    );
    Affine::similarity(scale, angle, origin)
}

/// Contrast, gamma, coil bias and noise on a view's stretched values, before normalisation.
fn jitter_intensity(v: &mut [f32], size: usize, rng: &mut SmallRng) {
    let gamma: f32 = rng.random_range(0.6..1.6);
    let gain: f32 = rng.random_range(0.75..1.25);
    let offset: f32 = rng.random_range(-0.08..0.08);
    let (bx, by): (f32, f32) = (rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3));
    let noise: f32 = rng.random_range(0.0..0.05);
    for (k, x) in v.iter_mut().enumerate() {
        let (u, w) = (
            (k % size) as f32 / size as f32 - 0.5,
            (k / size) as f32 / size as f32 - 0.5,
        );
        let bias = 1.0 + bx * u + by * w;
        let n: f32 = if noise > 0.0 {
            noise * (rng.random::<f32>() - 0.5) * 3.46
        } else {
            0.0
        };
        *x = ((x.max(0.0).powf(gamma) * gain * bias + offset) + n).clamp(0.0, 1.2);
    }
}

/// Per view: the network input and its targets on the `g x g` grid.
pub(super) struct Targets {
    pub(super) input: Vec<f32>,
    /// Two planes (centre, L5S1) of Gaussian peaks.
    pub(super) heat: Vec<f32>,
    /// Where the peak maps are scored (0 above a real slice's topmost marked disc).
    pub(super) weight: Vec<f32>,
    pub(super) offsets: Vec<f32>,
    pub(super) offset_mask: Vec<f32>,
    pub(super) peaks: usize,
    /// The upper and the lower endplates' corner heatmaps, each corner's peak on the cell that
    /// holds it.
    pub(super) corner_heat: Vec<f32>,
    /// dx, dy (in cells) from each of the 3 x 3 cells around a corner's peak to the corner: two
    /// planes for upper corners, two for lower.
    pub(super) corner_offsets: Vec<f32>,
    pub(super) corner_mask: Vec<f32>,
    pub(super) corner_peaks: usize,
}

pub(super) fn targets(
    s: &DetSample,
    view: &Affine,
    input: &DetectorInput,
    unit: f64,
    rng: &mut SmallRng,
) -> Targets {
    let size = input.size;
    let g = size / STRIDE;
    let plane = g * g;
    let mut values = warp(
        &s.values,
        s.width,
        s.height,
        view,
        size,
        size,
        input.pad_value,
    );
    jitter_intensity(&mut values, size, rng);
    values
        .iter_mut()
        .for_each(|x| *x = (*x - input.mean) / input.std);
    let to_view = view.inverse().expect("a similarity with scale > 0");
    let mut t = Targets {
        input: values,
        heat: vec![0.0; 2 * plane],
        weight: vec![1.0; 2 * plane],
        offsets: vec![0.0; 8 * plane],
        offset_mask: vec![0.0; 8 * plane],
        peaks: 0,
        corner_heat: vec![0.0; 2 * plane],
        corner_offsets: vec![0.0; 4 * plane],
        corner_mask: vec![0.0; 4 * plane],
        corner_peaks: 0,
    };
    let stride = STRIDE as f64;
    // The topmost marked disc's frame, for real slices whose truth stops at L1L2.
    let mut top: Option<(usize, DiscFrame)> = None;
    for d in &s.discs {
        let c = d.corners.map(|p| {
            let (u, v) = to_view.apply(p.x, p.y);
            Point::new(u, v)
        });
        let Ok(f) = DiscFrame::of(&c) else { continue };
        if s.partial_truth && top.as_ref().is_none_or(|t| d.from_sacrum > t.0) {
            top = Some((d.from_sacrum, f));
        }
        for (q, p) in c.iter().enumerate() {
            corner_target(&mut t, q / 2, *p, g);
        }
        let sigma = (f.width / stride * 0.1).max(0.7);
        let r = (3.0 * sigma).ceil() as usize;
        let (cx, cy) = (f.center.x / stride, f.center.y / stride);
        let on_grid = gaussian_peak(cx, cy, g, sigma, r, |i, j, near, h| {
            let k = j * g + i;
            t.heat[k] = t.heat[k].max(h);
            if d.from_sacrum == 0 {
                t.heat[plane + k] = t.heat[plane + k].max(h);
            }
            if near {
                let (x0, y0) = ((i as f64 + 0.5) * stride, (j as f64 + 0.5) * stride);
                for (q, p) in c.iter().enumerate() {
                    t.offsets[2 * q * plane + k] = ((p.x - x0) / unit) as f32;
                    t.offsets[(2 * q + 1) * plane + k] = ((p.y - y0) / unit) as f32;
                    t.offset_mask[2 * q * plane + k] = 1.0;
                    t.offset_mask[(2 * q + 1) * plane + k] = 1.0;
                }
            }
        });
        t.peaks += on_grid as usize;
    }
    // Above the topmost marked disc of a real slice (half a disc width past its centre, up the
    // spine, against v which points to the feet), nothing is scored; the corner heatmaps take
    // the centre map's weights.
    if let Some((_, f)) = top {
        for j in 0..g {
            for i in 0..g {
                let (x, y) = (
                    (i as f64 + 0.5) * stride - f.center.x,
                    (j as f64 + 0.5) * stride - f.center.y,
                );
                if -(x * f.v.x + y * f.v.y) > 0.5 * f.width {
                    t.weight[j * g + i] = 0.0;
                    t.weight[plane + j * g + i] = 0.0;
                }
            }
        }
    }
    t
}

/// One corner's targets on endplate `e`'s (0 upper, 1 lower) heatmap and offsets. A corner is
/// a point, not a disc, so its peak is narrow (sigma 0.8 cells) whatever the disc's size.
fn corner_target(t: &mut Targets, e: usize, p: Point, g: usize) {
    let plane = g * g;
    let (fi, fj) = (p.x / STRIDE as f64, p.y / STRIDE as f64);
    let on_grid = gaussian_peak(fi, fj, g, 0.8, 2, |i, j, near, h| {
        let cell = j * g + i;
        let k = e * plane + cell;
        t.corner_heat[k] = t.corner_heat[k].max(h);
        if near {
            let (dx, dy) = (fi - (i as f64 + 0.5), fj - (j as f64 + 0.5));
            t.corner_offsets[2 * e * plane + cell] = dx as f32;
            t.corner_offsets[(2 * e + 1) * plane + cell] = dy as f32;
            t.corner_mask[2 * e * plane + cell] = 1.0;
            t.corner_mask[(2 * e + 1) * plane + cell] = 1.0;
        }
    });
    t.corner_peaks += on_grid as usize;
}

/// A Gaussian peak (sd `sigma` cells) on a `g` x `g` grid for the point `(x, y)`, in cells:
/// `visit(i, j, near, value)` for each cell within `r` of the cell that holds the point, where
/// that cell's value is exactly 1 (the focal loss's positive) and every other's at most 0.99,
/// and `near` marks the 3 x 3 cells around it, which regress offsets. Returns false, visiting
/// nothing, for a point off the grid. Disc centres and corners both take their targets here.
fn gaussian_peak(
    x: f64,
    y: f64,
    g: usize,
    sigma: f64,
    r: usize,
    mut visit: impl FnMut(usize, usize, bool, f32),
) -> bool {
    let (ci, cj) = (x.floor(), y.floor());
    if ci < 0.0 || cj < 0.0 || ci >= g as f64 || cj >= g as f64 {
        return false;
    }
    let (ci, cj) = (ci as usize, cj as usize);
    for j in cj.saturating_sub(r)..(cj + r + 1).min(g) {
        for i in ci.saturating_sub(r)..(ci + r + 1).min(g) {
            let (di, dj) = (i as f64 - ci as f64, j as f64 - cj as f64);
            let h = if (i, j) == (ci, cj) {
                1.0
            } else {
                (-(di * di + dj * dj) / (2.0 * sigma * sigma)).exp() as f32 * 0.99
            };
            visit(i, j, di.abs() <= 1.0 && dj.abs() <= 1.0, h);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corner_peaks_on_its_cell_and_its_offsets_lead_back_to_it() {
        let g = 16;
        let plane = g * g;
        let mut t = Targets {
            input: Vec::new(),
            heat: Vec::new(),
            weight: Vec::new(),
            offsets: Vec::new(),
            offset_mask: Vec::new(),
            peaks: 0,
            corner_heat: vec![0.0; 2 * plane],
            corner_offsets: vec![0.0; 4 * plane],
            corner_mask: vec![0.0; 4 * plane],
            corner_peaks: 0,
        };
        // A lower-endplate corner at (21.0, 30.5) input px: cell (5, 7) of 4 px cells.
        let p = Point::new(21.0, 30.5);
        corner_target(&mut t, 1, p, g);
        assert_eq!(t.corner_peaks, 1);
        assert_eq!(t.corner_heat[plane + 7 * g + 5], 1.0);
        assert!(
            t.corner_heat[..plane].iter().all(|&h| h == 0.0),
            "upper map untouched"
        );
        let ones = t.corner_heat.iter().filter(|&&h| h == 1.0).count();
        assert_eq!(ones, 1, "one exact peak");
        // Every one of the 3 x 3 cells around the peak points at the corner.
        let mut cells = 0;
        for j in 6..=8 {
            for i in 4..=6 {
                let c = j * g + i;
                assert_eq!(t.corner_mask[2 * plane + c], 1.0);
                let x = (i as f64 + 0.5 + t.corner_offsets[2 * plane + c] as f64) * 4.0;
                let y = (j as f64 + 0.5 + t.corner_offsets[3 * plane + c] as f64) * 4.0;
                assert!((x - p.x).abs() < 1e-5 && (y - p.y).abs() < 1e-5, "{x} {y}");
                cells += 1;
            }
        }
        assert_eq!(cells, 9);
        assert_eq!(t.corner_mask.iter().sum::<f32>(), 18.0);
        // A corner outside the view scores nothing.
        corner_target(&mut t, 0, Point::new(-3.0, 10.0), g);
        assert_eq!(t.corner_peaks, 1);
    }
}
