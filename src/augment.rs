//! The paper's augmentation: small shifts, rotations and flips of each drawn ROI, on the fly.
//! Works on the 128x128 gray ROI so the pad gray stays gray.

use crate::roi::Roi;
use rand::rngs::SmallRng;
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Largest shift in pixels, each axis.
    pub max_shift: f64,
    /// Largest rotation in degrees.
    pub max_rotation_deg: f64,
    /// Probability of a left-right flip (anterior and posterior swap places).
    pub flip: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            max_shift: 6.0,
            max_rotation_deg: 8.0,
            flip: 0.5,
        }
    }
}

impl Augment {
    pub fn apply(&self, roi: &Roi, pad: f32, rng: &mut SmallRng) -> Roi {
        let n = roi.size;
        let dx = rng.random_range(-self.max_shift..=self.max_shift);
        let dy = rng.random_range(-self.max_shift..=self.max_shift);
        let a = rng
            .random_range(-self.max_rotation_deg..=self.max_rotation_deg)
            .to_radians();
        let flip = rng.random::<f64>() < self.flip;
        let (s, c) = a.sin_cos();
        let h = n as f64 / 2.0;
        let mut out = vec![pad; n * n];
        for y in 0..n {
            for x in 0..n {
                // Inverse map: output pixel -> source position.
                let (mut px, py) = (x as f64 + 0.5 - h - dx, y as f64 + 0.5 - h - dy);
                if flip {
                    px = -px;
                }
                let sx = c * px + s * py + h - 0.5;
                let sy = -s * px + c * py + h - 0.5;
                if sx < 0.0 || sy < 0.0 || sx > (n - 1) as f64 || sy > (n - 1) as f64 {
                    continue;
                }
                let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
                let (tx, ty) = ((sx - x0 as f64) as f32, (sy - y0 as f64) as f32);
                let p = |xx: usize, yy: usize| roi.pixels[yy * n + xx];
                out[y * n + x] = (p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx) * (1.0 - ty)
                    + (p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx) * ty;
            }
        }
        Roi {
            size: n,
            pixels: out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn identity_when_everything_is_off_and_flip_mirrors() {
        let pixels: Vec<f32> = (0..16 * 16).map(|i| (i % 16) as f32 / 15.0).collect();
        let roi = Roi { size: 16, pixels };
        let mut rng = SmallRng::seed_from_u64(1);
        let none = Augment {
            max_shift: 0.0,
            max_rotation_deg: 0.0,
            flip: 0.0,
        };
        assert_eq!(none.apply(&roi, 0.5, &mut rng), roi);
        let flip = Augment {
            max_shift: 0.0,
            max_rotation_deg: 0.0,
            flip: 1.0,
        };
        let f = flip.apply(&roi, 0.5, &mut rng);
        assert!((f.pixels[0] - 1.0).abs() < 1e-6 && f.pixels[15].abs() < 1e-6);
    }
}
