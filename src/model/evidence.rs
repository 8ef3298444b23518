//! Evidence maps: where the network looked. Occlusion sensitivity over the disc's ROI: a gray
//! patch slides over the ROI and each position records how much the predicted class's
//! calibrated probability falls when that part of the disc is hidden; every ROI pixel gets the
//! mean fall over the patch positions that cover it.
//!
//! Patch and stride: [`PATCH`] 32 and [`STRIDE`] 16 on the 128-pixel ROI, so 7 x 7 = 49
//! network runs per disc (about 1 s natively on one thread at 19 ms a run, a few seconds in one
//! page worker). A 32-pixel patch is about 12 mm on a typical ROI, the size of a large
//! Schmorl's node or a notch with its rim, so hiding one removes the lesion whole rather than a
//! sliver the network can read around; a 16-pixel stride gives every pixel four overlapping
//! patches, which smooths the map to a useful 16-pixel resolution. A 24/8 grid (196 runs, four
//! times the cost) was the alternative; the page cannot pay that per disc on demand.
//! The gray is the ROI's own mean, so a patch adds no edge brighter or darker than the disc.

use super::inference::Classifier;
use crate::class::Class;
use crate::disc::roi::{network_input, Roi};
use crate::error::{Error, Result};

/// Side of the occluding patch, in ROI pixels.
pub const PATCH: usize = 32;
/// Step between patch positions, in ROI pixels.
pub const STRIDE: usize = 16;

/// One disc's evidence map.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evidence {
    /// ROI side (the map is `size x size`, row-major, like the ROI).
    pub size: usize,
    /// The class explained: the disc's predicted class.
    pub class: Class,
    /// Its calibrated probability with nothing hidden.
    pub probability: f32,
    /// Per ROI pixel: the mean fall of `class`'s probability over the patches covering it.
    /// Negative where hiding the pixel made the class more likely.
    pub drops: Vec<f32>,
    /// The largest fall of any one patch position.
    pub max_drop: f32,
    /// Network runs it took (patch positions).
    pub runs: usize,
}

/// Patch offsets along one side: every `stride` from 0, plus the last that reaches the edge.
fn offsets(size: usize, patch: usize, stride: usize) -> Vec<usize> {
    if patch >= size {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..=size - patch).step_by(stride.max(1)).collect();
    if *v.last().expect("non-empty") != size - patch {
        v.push(size - patch);
    }
    v
}

/// The occlusion map of one ROI with the module's patch and stride.
pub fn occlusion(model: &Classifier, roi: &Roi) -> Result<Evidence> {
    occlusion_with(model, roi, PATCH, STRIDE)
}

/// The occlusion map with any patch and stride (tests and measurements).
pub fn occlusion_with(
    model: &Classifier,
    roi: &Roi,
    patch: usize,
    stride: usize,
) -> Result<Evidence> {
    if roi.pixels.len() != roi.size * roi.size {
        return Err(Error::Invalid(format!(
            "evidence map needs a square ROI: {} values for size {}",
            roi.pixels.len(),
            roi.size
        )));
    }
    let input = network_input([roi], &model.card().preprocessing);
    occlusion_of_input(model, &input, patch, stride)
}

/// The occlusion map of one disc already turned into network input (`[views, 3, n, n]`
/// flattened, as [`network_input`] makes it): the page's workers hold only the model and get
/// this. The map explains the disc's own ROI, the first view, alone: a patch hidden in it
/// would be diluted by the moved copies a card may average it with. The patch is each
/// channel's mean, which is the ROI's mean gray after the card's normalisation.
pub fn occlusion_of_input(
    model: &Classifier,
    input: &[f32],
    patch: usize,
    stride: usize,
) -> Result<Evidence> {
    let views = model.card().preprocessing.views_per_disc();
    let input = &input[..input.len() / views];
    let n = ((input.len() / 3) as f64).sqrt().round() as usize;
    if n == 0 || 3 * n * n != input.len() || patch == 0 {
        return Err(Error::Invalid(format!(
            "evidence map needs one disc's network input of 3 x n x n values and a patch: got {} values, patch {patch}",
            input.len()
        )));
    }
    let plane = n * n;
    let base_logits = model.logits_of_own_views(input.to_vec(), 1)?[0];
    let base = model.predict(base_logits);
    let class = base.class;
    let k = class.index();
    let gray: Vec<f32> = input
        .chunks_exact(plane)
        .map(|c| c.iter().sum::<f32>() / plane as f32)
        .collect();
    let offs = offsets(n, patch, stride);
    let positions: Vec<(usize, usize)> = offs
        .iter()
        .flat_map(|&y| offs.iter().map(move |&x| (x, y)))
        .collect();
    let mut sum = vec![0.0f32; plane];
    let mut count = vec![0u32; plane];
    let mut max_drop = f32::NEG_INFINITY;
    let mut hidden = input.to_vec();
    for &(x0, y0) in &positions {
        hidden.copy_from_slice(input);
        let (x1, y1) = ((x0 + patch).min(n), (y0 + patch).min(n));
        for (c, g) in gray.iter().enumerate() {
            for y in y0..y1 {
                hidden[c * plane + y * n + x0..c * plane + y * n + x1].fill(*g);
            }
        }
        let logits = model.logits_of_own_views(hidden.clone(), 1)?[0];
        let drop = base.probabilities[k] - model.predict(logits).probabilities[k];
        max_drop = max_drop.max(drop);
        for y in y0..y1 {
            for x in x0..x1 {
                sum[y * n + x] += drop;
                count[y * n + x] += 1;
            }
        }
    }
    let drops = sum
        .iter()
        .zip(&count)
        .map(|(&s, &c)| if c == 0 { 0.0 } else { s / c as f32 })
        .collect();
    Ok(Evidence {
        size: n,
        class,
        probability: base.probabilities[k],
        drops,
        max_drop,
        runs: positions.len(),
    })
}

impl Evidence {
    /// The colour scale's top: the largest per-pixel fall, at least 0.01 so that a map of
    /// nothing stays (nearly) transparent instead of amplifying noise.
    pub fn scale(&self) -> f32 {
        self.drops.iter().copied().fold(0.0f32, f32::max).max(0.01)
    }

    /// Share of the map's positive mass (falls above zero) on pixels where `weight` (one value
    /// per ROI pixel in [0, 1], e.g. the drawn lesion) is set; `None` for a map with no mass.
    pub fn mass_inside(&self, weight: &[f32]) -> Option<f64> {
        let (mut inside, mut total) = (0.0f64, 0.0f64);
        for (&d, &w) in self.drops.iter().zip(weight) {
            if d > 0.0 {
                total += d as f64;
                inside += d as f64 * w.clamp(0.0, 1.0) as f64;
            }
        }
        (total > 0.0).then(|| inside / total)
    }

    /// The map as RGBA over the ROI: transparent where hiding the pixel lowered the class's
    /// probability by nothing (or raised it), through translucent yellow to opaque red at
    /// [`Evidence::scale`].
    pub fn to_rgba(&self) -> Vec<u8> {
        let top = self.scale();
        let mut out = Vec::with_capacity(4 * self.drops.len());
        for &d in &self.drops {
            let t = (d / top).clamp(0.0, 1.0);
            let [r, g, b] = heat(t);
            out.extend([r, g, b, (t * 200.0).round() as u8]);
        }
        out
    }

    /// The ROI in gray with the map blended over it, RGB (the PNG `--evidence` writes).
    pub fn over_roi_rgb(&self, roi: &Roi) -> Vec<u8> {
        let rgba = self.to_rgba();
        let mut out = Vec::with_capacity(3 * self.drops.len());
        for (i, &g) in roi.pixels.iter().enumerate() {
            let g = g.clamp(0.0, 1.0) * 255.0;
            let a = rgba[4 * i + 3] as f32 / 255.0;
            for c in 0..3 {
                out.push((g * (1.0 - a) + rgba[4 * i + c] as f32 * a).round() as u8);
            }
        }
        out
    }
}

/// The colour of `t` in [0, 1]: yellow at 0 to red at 1.
pub fn heat(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    [255, (230.0 * (1.0 - t)).round() as u8, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_cover_the_roi() {
        assert_eq!(offsets(128, 32, 16), vec![0, 16, 32, 48, 64, 80, 96]);
        assert_eq!(
            offsets(128, 24, 13),
            vec![0, 13, 26, 39, 52, 65, 78, 91, 104]
        );
        assert_eq!(offsets(100, 32, 16), vec![0, 16, 32, 48, 64, 68]);
        assert_eq!(offsets(16, 32, 16), vec![0]);
    }

    #[test]
    fn mass_inside_counts_positive_falls_only() {
        let e = Evidence {
            size: 2,
            class: Class::Notched,
            probability: 0.9,
            drops: vec![0.3, 0.1, -0.5, 0.0],
            max_drop: 0.3,
            runs: 1,
        };
        let m = e.mass_inside(&[1.0, 0.0, 1.0, 1.0]).unwrap();
        assert!((m - 0.75).abs() < 1e-6, "{m}");
        assert_eq!(e.to_rgba()[3], 200);
        let flat = Evidence {
            drops: vec![0.0; 4],
            ..e
        };
        assert_eq!(flat.mass_inside(&[1.0; 4]), None);
    }
}
