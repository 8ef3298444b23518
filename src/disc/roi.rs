//! The disc ROI exactly as SPEC.md fixes it: contrast stretch over the whole slice, an
//! axis-aligned rectangle around the disc resampled with anti-aliasing to 128 pixels on its long
//! side, centred gray padding, then the network's normalisation. One function serves the page,
//! the CLI, training and evaluation, so they cannot drift apart.

use super::geometry::{DiscFrame, Point};
use crate::error::Result;
use crate::image::contrast::Stretch;
use crate::image::slice::Slice;
use serde::{Deserialize, Serialize};

/// Every preprocessing parameter, stored in the model card so a model always sees its inputs the
/// way it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoiParams {
    /// Output side in pixels.
    pub size: usize,
    /// Fraction of each adjacent vertebral body's height included above and below the disc.
    pub vertebra_fraction: f64,
    /// Vertebral body height as a multiple of endplate width, used when the neighbouring discs
    /// are not given (lumbar bodies are about three quarters as high as they are deep).
    pub vertebra_height_per_width: f64,
    /// Margin added at each end along the disc axis, as a fraction of the endplate width: enough
    /// to show the spinal canal's CSF behind the disc (and the same in front, so the ROI does
    /// not depend on which side is anterior).
    pub axis_margin: f64,
    /// Saturated fractions at the dark and bright end (MATLAB `stretchlim` defaults).
    pub stretch_low: f64,
    pub stretch_high: f64,
    /// Gray level of the padding (and of anything outside the slice), in [0, 1].
    pub pad_value: f32,
    /// Per-channel normalisation of the gray value copied to three channels.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Copies of each disc cut with its corners moved, whose network outputs are averaged with
    /// the disc's own: a call that hangs on where exactly the corners sit flips between two
    /// readers' (or the detector's and a reader's) corners; averaged over nearby placements it
    /// flips less often (docs/real-mri-experiments.md, "Averaging over moved corners"). Absent
    /// in cards made before it: one ROI per disc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_corners: Option<MovedCorners>,
}

/// The card's fixed table of corner moves, so that every reader (CLI, page, another
/// implementation) cuts the same copies and no random draw happens at inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedCorners {
    /// Scale of a unit move, as a fraction of the disc's width (the mean of its two endplates'
    /// lengths); 0.03 is training's `--corner-jitter`.
    pub fraction: f64,
    /// One row per copy: the moves of the four corners in the disc's own frame
    /// ([`DiscFrame::moved`]: the cranial endplate's two corners, then the caudal one's, each
    /// along and across the endplates), in units of `fraction` of the width; standard normal
    /// draws, so a copy is what training's isotropic jitter could have cut.
    pub moves: Vec<[f64; 8]>,
}

impl RoiParams {
    /// Network inputs per disc: its own ROI and one per moved copy.
    pub fn views_per_disc(&self) -> usize {
        1 + self.moved_corners.as_ref().map_or(0, |m| m.moves.len())
    }

    /// These parameters without the moved copies: for what shows or writes the disc's own ROI
    /// only (a preview, `endplate roi`), so it does not cut copies it never uses.
    pub fn own_roi_only(&self) -> RoiParams {
        RoiParams {
            moved_corners: None,
            ..self.clone()
        }
    }
}

impl Default for RoiParams {
    fn default() -> Self {
        RoiParams {
            size: 128,
            vertebra_fraction: 0.30,
            vertebra_height_per_width: 0.75,
            axis_margin: 0.25,
            stretch_low: 0.01,
            stretch_high: 0.99,
            pad_value: 0.5,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            moved_corners: None,
        }
    }
}

/// The rotated rectangle cut from the slice, in slice pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiRect {
    pub frame: DiscFrame,
    /// Full extent along the disc axis `u` and across it `v`.
    pub width: f64,
    pub height: f64,
}

impl RoiRect {
    pub fn new(corners: &[Point; 4], image_size: (usize, usize), p: &RoiParams) -> Result<RoiRect> {
        let frame = DiscFrame::from_corners(corners, image_size)?;
        let width = 2.0 * (frame.half_extent_u + p.axis_margin * frame.width);
        let height = 2.0
            * (frame.half_extent_v
                + p.vertebra_fraction * p.vertebra_height_per_width * frame.width);
        Ok(RoiRect {
            frame,
            width,
            height,
        })
    }

    /// The rectangle's four corners in slice coordinates (for drawing it over the slice).
    pub fn outline(&self) -> [Point; 4] {
        let f = &self.frame;
        let at = |su: f64, sv: f64| {
            Point::new(
                f.center.x + su * 0.5 * self.width * f.u.x + sv * 0.5 * self.height * f.v.x,
                f.center.y + su * 0.5 * self.width * f.u.y + sv * 0.5 * self.height * f.v.y,
            )
        };
        [at(-1.0, -1.0), at(1.0, -1.0), at(1.0, 1.0), at(-1.0, 1.0)]
    }
}

/// A preprocessed disc: `size x size` gray values in [0, 1], row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Roi {
    pub size: usize,
    pub pixels: Vec<f32>,
    /// The copies cut with the corners moved as the card's `moved_corners` says, each like
    /// `pixels`; empty without it. The network sees them after `pixels`, the previews never.
    pub moved: Vec<Vec<f32>>,
}

/// Contrast-stretched bilinear sample at continuous slice coordinates; outside the slice the
/// pad gray, so a disc near the border is not smeared by clamped edge pixels.
fn sample(slice: &Slice, stretch: &Stretch, x: f64, y: f64, outside: f32) -> f32 {
    let (w, h) = (slice.width as f64, slice.height as f64);
    if !(0.0..=w).contains(&x) || !(0.0..=h).contains(&y) {
        return outside;
    }
    // Pixel (i, j) has its value at (i + 0.5, j + 0.5).
    let fx = (x - 0.5).clamp(0.0, w - 1.0);
    let fy = (y - 0.5).clamp(0.0, h - 1.0);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = (
        (x0 + 1).min(slice.width - 1),
        (y0 + 1).min(slice.height - 1),
    );
    let (tx, ty) = ((fx - x0 as f64) as f32, (fy - y0 as f64) as f32);
    let v = |xi, yi| stretch.apply(slice.get(xi, yi));
    let top = v(x0, y0) * (1.0 - tx) + v(x1, y0) * tx;
    let bottom = v(x0, y1) * (1.0 - tx) + v(x1, y1) * tx;
    top * (1.0 - ty) + bottom * ty
}

impl Roi {
    /// Cut the ROI of one disc, computing the slice's contrast stretch. When several discs come
    /// from one slice, compute the [`Stretch`] once and call [`Roi::extract_with`].
    pub fn extract(slice: &Slice, corners: &[Point; 4], p: &RoiParams) -> Result<Roi> {
        let stretch = Stretch::of(slice, p.stretch_low, p.stretch_high);
        Self::extract_with(slice, &stretch, corners, p)
    }

    /// Cut the ROIs of several discs of one slice, stretching the slice's contrast once.
    pub fn extract_many(slice: &Slice, discs: &[[Point; 4]], p: &RoiParams) -> Result<Vec<Roi>> {
        let stretch = Stretch::of(slice, p.stretch_low, p.stretch_high);
        discs
            .iter()
            .map(|c| Self::extract_with(slice, &stretch, c, p))
            .collect()
    }

    /// The ROIs of discs on a slice stored upside down (corners as on the stored slice): cut
    /// from the slice turned upright, so each shows its disc as every ROI the classifier learnt
    /// from does, the cranial vertebra on top.
    pub fn extract_turned(slice: &Slice, discs: &[[Point; 4]], p: &RoiParams) -> Result<Vec<Roi>> {
        let turned: Vec<[Point; 4]> = discs
            .iter()
            .map(|c| crate::disc::detection::flip_corners(c, slice.height))
            .collect();
        Self::extract_many(&slice.flipped_vertically(), &turned, p)
    }

    pub fn extract_with(
        slice: &Slice,
        stretch: &Stretch,
        corners: &[Point; 4],
        p: &RoiParams,
    ) -> Result<Roi> {
        let rect = RoiRect::new(corners, (slice.width, slice.height), p)?;
        let mut roi = Self::resample(slice, stretch, &rect, p);
        if let Some(m) = &p.moved_corners {
            // A move that leaves no disc to cut (the endplates crossing on a thin disc) gives the
            // disc's own ROI, as in training.
            roi.moved = m
                .moves
                .iter()
                .map(|unit| {
                    RoiRect::new(
                        &rect.frame.moved(unit, m.fraction),
                        (slice.width, slice.height),
                        p,
                    )
                    .map_or_else(
                        |_| roi.pixels.clone(),
                        |r| Self::resample(slice, stretch, &r, p).pixels,
                    )
                })
                .collect();
        }
        Ok(roi)
    }

    fn resample(slice: &Slice, stretch: &Stretch, rect: &RoiRect, p: &RoiParams) -> Roi {
        let n = p.size;
        let long = rect.width.max(rect.height);
        let ow = ((rect.width * n as f64 / long).round() as usize).clamp(1, n);
        let oh = ((rect.height * n as f64 / long).round() as usize).clamp(1, n);
        // Output pixels per slice pixel, per axis, so the content fills ow x oh exactly.
        let (sx, sy) = (ow as f64 / rect.width, oh as f64 / rect.height);
        // Area averaging when shrinking: average a grid of bilinear taps covering the footprint.
        let (nx, ny) = (
            (1.0 / sx).ceil().max(1.0) as usize,
            (1.0 / sy).ceil().max(1.0) as usize,
        );
        let (x0, y0) = ((n - ow) / 2, (n - oh) / 2);
        let f = &rect.frame;
        let mut pixels = vec![p.pad_value; n * n];
        for b in 0..oh {
            for a in 0..ow {
                let mut acc = 0.0f32;
                for j in 0..ny {
                    let ly = (b as f64 + (j as f64 + 0.5) / ny as f64) / sy - 0.5 * rect.height;
                    for i in 0..nx {
                        let lx = (a as f64 + (i as f64 + 0.5) / nx as f64) / sx - 0.5 * rect.width;
                        let x = f.center.x + lx * f.u.x + ly * f.v.x;
                        let y = f.center.y + lx * f.u.y + ly * f.v.y;
                        acc += sample(slice, stretch, x, y, p.pad_value);
                    }
                }
                pixels[(y0 + b) * n + x0 + a] = acc / (nx * ny) as f32;
            }
        }
        Roi {
            size: n,
            pixels,
            moved: Vec::new(),
        }
    }

    /// The network input for this disc: `[3, size, size]`, the gray value normalised per channel.
    pub fn to_tensor(&self, p: &RoiParams) -> Vec<f32> {
        network_input([self], p)
    }

    fn push_tensor(&self, p: &RoiParams, out: &mut Vec<f32>) {
        for pixels in std::iter::once(&self.pixels).chain(&self.moved) {
            for c in 0..3 {
                out.extend(pixels.iter().map(|&g| (g - p.mean[c]) / p.std[c]));
            }
        }
    }

    /// 8-bit gray, for writing a PNG or showing the preview.
    pub fn to_gray8(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .map(|&g| (g.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect()
    }
}

/// The network input for several discs, `[n * views, 3, size, size]` flattened (each disc's own
/// ROI, then its moved copies), written into one buffer of its final size (inference, the page's
/// workers and every training batch build it).
pub fn network_input<'a>(rois: impl IntoIterator<Item = &'a Roi>, p: &RoiParams) -> Vec<f32> {
    let rois = rois.into_iter();
    let mut out = Vec::with_capacity(rois.size_hint().0 * p.views_per_disc() * 3 * p.size * p.size);
    for roi in rois {
        roi.push_tensor(p, &mut out);
    }
    out
}
