//! Random fields for the phantoms: smooth value noise for marrow texture, bias fields and soft
//! tissue; Gaussian blur for the scanner's point spread; Rician noise of magnitude MRI.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Smooth 2-D value noise: random values on a lattice, bicubic-smoothed (smoothstep) between.
#[derive(Debug, Clone)]
pub struct ValueNoise {
    seed: u64,
    cell: f64,
}

fn hash(seed: u64, x: i64, y: i64) -> f64 {
    let mut h = seed
        ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

impl ValueNoise {
    /// `cell`: lattice spacing in the units the noise is sampled in (mm here).
    pub fn new(seed: u64, cell: f64) -> ValueNoise {
        ValueNoise { seed, cell }
    }

    /// A value in about [-1, 1].
    pub fn at(&self, x: f64, y: f64) -> f64 {
        let (fx, fy) = (x / self.cell, y / self.cell);
        let (ix, iy) = (fx.floor(), fy.floor());
        let (tx, ty) = (fx - ix, fy - iy);
        let s = |t: f64| t * t * (3.0 - 2.0 * t);
        let (sx, sy) = (s(tx), s(ty));
        let (ix, iy) = (ix as i64, iy as i64);
        let v = |dx, dy| hash(self.seed, ix + dx, iy + dy);
        let top = v(0, 0) * (1.0 - sx) + v(1, 0) * sx;
        let bottom = v(0, 1) * (1.0 - sx) + v(1, 1) * sx;
        top * (1.0 - sy) + bottom * sy
    }

    /// Sum of `octaves` octaves, each half the cell and half the amplitude of the last.
    pub fn fractal(&self, x: f64, y: f64, octaves: u32) -> f64 {
        let (mut sum, mut amp, mut norm, mut scale) = (0.0, 1.0, 0.0, 1.0);
        for o in 0..octaves {
            let n = ValueNoise {
                seed: self.seed.wrapping_add(o as u64 * 7919),
                cell: self.cell / scale,
            };
            sum += amp * n.at(x, y);
            norm += amp;
            amp *= 0.5;
            scale *= 2.0;
        }
        sum / norm
    }
}

/// Separable Gaussian blur with clamped edges.
pub fn gaussian_blur(img: &mut [f32], w: usize, h: usize, sigma: f64) {
    if sigma < 0.05 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let ks: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / ks).collect();
    let mut tmp = vec![0.0f32; img.len()];
    blur_pass(img, &mut tmp, w, h, &k, r, (1, w));
    blur_pass(&tmp, img, h, w, &k, r, (w, 1));
}

/// Convolve along one axis: `lines` lines of `len` samples; `(step, stride)` are the index steps
/// along a line and between lines. Edges are clamped.
fn blur_pass(
    src: &[f32],
    dst: &mut [f32],
    len: usize,
    lines: usize,
    k: &[f32],
    r: isize,
    (step, stride): (usize, usize),
) {
    for line in 0..lines {
        for i in 0..len {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let ii = (i as isize + j as isize - r).clamp(0, len as isize - 1) as usize;
                acc += kv * src[line * stride + ii * step];
            }
            dst[line * stride + i * step] = acc;
        }
    }
}

/// Magnitude of a complex signal with Gaussian noise in both channels: what a magnitude MR image
/// shows, including the non-zero noise floor in air.
pub fn rician(img: &mut [f32], sigma: f64, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    for v in img.iter_mut() {
        let re = *v as f64 + sigma * rng.sample::<f64, _>(StandardNormal);
        let im: f64 = sigma * rng.sample::<f64, _>(StandardNormal);
        *v = (re * re + im * im).sqrt() as f32;
    }
}
