//! The paper's augmentation: small shifts, rotations and flips of each drawn ROI, on the fly.
//! Works on the 128x128 gray ROI so the pad gray stays gray.

use crate::disc::roi::Roi;
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

/// The ROI turned by `k` quarter turns clockwise: exact, no resampling. The labels of the
/// self-supervised rotation task that pretrains a backbone without any lesion labels.
pub fn quarter_turns(roi: &Roi, k: usize) -> Roi {
    let n = roi.size;
    let pixels = (0..n * n)
        .map(|i| {
            let (x, y) = (i % n, i / n);
            let (sx, sy) = match k % 4 {
                0 => (x, y),
                1 => (y, n - 1 - x),
                2 => (n - 1 - x, n - 1 - y),
                _ => (n - 1 - y, x),
            };
            roi.pixels[sy * n + sx]
        })
        .collect();
    Roi { size: n, pixels }
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

    #[test]
    fn quarter_turns_turn_clockwise_and_four_make_a_circle() {
        // 2x2: [a b; c d] turned clockwise is [c a; d b].
        let roi = Roi {
            size: 2,
            pixels: vec![1.0, 2.0, 3.0, 4.0],
        };
        assert_eq!(quarter_turns(&roi, 1).pixels, vec![3.0, 1.0, 4.0, 2.0]);
        assert_eq!(quarter_turns(&roi, 2).pixels, vec![4.0, 3.0, 2.0, 1.0]);
        let big = Roi {
            size: 5,
            pixels: (0..25).map(|v| v as f32).collect(),
        };
        let once = quarter_turns(&big, 1);
        assert_eq!(
            quarter_turns(&quarter_turns(&quarter_turns(&once, 1), 1), 1),
            big
        );
        assert_eq!(
            quarter_turns(&big, 3),
            quarter_turns(&quarter_turns(&once, 1), 1)
        );
    }
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
