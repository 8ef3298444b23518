//! The paper's augmentation: small shifts, rotations and flips of each drawn ROI, on the fly;
//! optionally also zoom, gamma and contrast, which the paper's phantoms never needed but real
//! scanners' differing contrasts and our differing corner spacing might. Works on the 128x128
//! gray ROI so the pad gray stays gray.

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
    /// Largest zoom, as a fraction: 0.1 draws the ROI between 1/1.1 and 1.1 times as large.
    /// 0 (the paper) draws nothing, so runs without it repeat their old random streams.
    #[serde(default)]
    pub max_scale: f64,
    /// Largest gamma change, as a fraction: 0.3 raises the gray values (in [0, 1]) to a power
    /// between 1/1.3 and 1.3, as a different echo time or scanner would darken or lighten the
    /// mid-grays. 0: off.
    #[serde(default)]
    pub max_gamma: f64,
    /// Largest contrast change about mid-gray, as a fraction: 0.2 scales every value's
    /// distance from 0.5 by 0.8 to 1.2. 0: off.
    #[serde(default)]
    pub max_contrast: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            max_shift: 6.0,
            max_rotation_deg: 8.0,
            flip: 0.5,
            max_scale: 0.0,
            max_gamma: 0.0,
            max_contrast: 0.0,
        }
    }
}

/// A factor between 1/(1+f) and 1+f, even in its logarithm; 1 without a draw when f is 0.
fn log_uniform(f: f64, rng: &mut SmallRng) -> f64 {
    if f <= 0.0 {
        return 1.0;
    }
    let l = (1.0 + f).ln();
    rng.random_range(-l..=l).exp()
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
    Roi {
        size: n,
        pixels,
        moved: Vec::new(),
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
        let zoom = log_uniform(self.max_scale, rng);
        let gamma = log_uniform(self.max_gamma, rng) as f32;
        let gain = if self.max_contrast > 0.0 {
            rng.random_range(1.0 - self.max_contrast..=1.0 + self.max_contrast) as f32
        } else {
            1.0
        };
        let tone = |v: f32| {
            if gamma == 1.0 && gain == 1.0 {
                v
            } else {
                (0.5 + (v.clamp(0.0, 1.0).powf(gamma) - 0.5) * gain).clamp(0.0, 1.0)
            }
        };
        let (s, c) = (a.sin() / zoom, a.cos() / zoom);
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
                out[y * n + x] = tone(
                    (p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx) * (1.0 - ty)
                        + (p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx) * ty,
                );
            }
        }
        Roi {
            size: n,
            pixels: out,
            moved: Vec::new(),
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
            ..Roi::default()
        };
        assert_eq!(quarter_turns(&roi, 1).pixels, vec![3.0, 1.0, 4.0, 2.0]);
        assert_eq!(quarter_turns(&roi, 2).pixels, vec![4.0, 3.0, 2.0, 1.0]);
        let big = Roi {
            size: 5,
            pixels: (0..25).map(|v| v as f32).collect(),
            ..Roi::default()
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
        let roi = Roi {
            size: 16,
            pixels,
            ..Roi::default()
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let none = Augment {
            max_shift: 0.0,
            max_rotation_deg: 0.0,
            flip: 0.0,
            ..Augment::default()
        };
        assert_eq!(none.apply(&roi, 0.5, &mut rng), roi);
        let flip = Augment { flip: 1.0, ..none };
        let f = flip.apply(&roi, 0.5, &mut rng);
        assert!((f.pixels[0] - 1.0).abs() < 1e-6 && f.pixels[15].abs() < 1e-6);
    }

    /// A ROI whose pixel (x, y) is x/15: a horizontal ramp, so zoom changes its slope.
    fn ramp() -> Roi {
        Roi {
            size: 16,
            pixels: (0..16 * 16).map(|i| (i % 16) as f32 / 15.0).collect(),
            ..Roi::default()
        }
    }

    #[test]
    fn zoom_gamma_and_contrast_change_the_values_as_drawn() {
        let still = Augment {
            max_shift: 0.0,
            max_rotation_deg: 0.0,
            flip: 0.0,
            ..Augment::default()
        };
        let roi = ramp();
        let mut rng = SmallRng::seed_from_u64(3);
        // Zoom about the centre: the ramp's slope across the middle row changes, its middle
        // value (between columns 7 and 8) stays.
        let zoomed = Augment {
            max_scale: 0.3,
            ..still
        };
        let mut slopes = Vec::new();
        for _ in 0..20 {
            let z = zoomed.apply(&roi, 0.5, &mut rng);
            let row = &z.pixels[8 * 16..9 * 16];
            assert!(((row[7] + row[8]) / 2.0 - 0.5).abs() < 1e-4);
            slopes.push((row[9] - row[6]) / 3.0 * 15.0);
        }
        // Slope 1 unzoomed; zoomed in it is steeper, out flatter, at most by 1.3.
        assert!(slopes
            .iter()
            .all(|&s| s > 1.0 / 1.3 - 1e-3 && s < 1.3 + 1e-3));
        assert!(slopes.iter().any(|&s| s > 1.05) && slopes.iter().any(|&s| s < 0.95));
        // Gamma: black and white stay, the mid-grays move, the order of values is kept.
        let toned = Augment {
            max_gamma: 0.5,
            ..still
        };
        let mut moved = 0;
        for _ in 0..20 {
            let t = toned.apply(&roi, 0.5, &mut rng);
            let row = &t.pixels[..16];
            assert!(row[0].abs() < 1e-6 && (row[15] - 1.0).abs() < 1e-6);
            assert!(row.windows(2).all(|w| w[1] > w[0]));
            moved += usize::from((row[8] - roi.pixels[8]).abs() > 0.01);
        }
        assert!(moved >= 15, "{moved}");
        // Contrast about mid-gray: 0.5 would stay; the ends move by the same factor, clamped.
        let contrast = Augment {
            max_contrast: 0.2,
            ..still
        };
        for _ in 0..20 {
            let t = contrast.apply(&roi, 0.5, &mut rng);
            let gain = (t.pixels[10] - t.pixels[5]) / (roi.pixels[10] - roi.pixels[5]);
            assert!((0.8 - 1e-4..=1.2 + 1e-4).contains(&gain), "{gain}");
            let low = 0.5 - (0.5 - roi.pixels[3]) * gain;
            assert!((t.pixels[3] - low.clamp(0.0, 1.0)).abs() < 1e-5);
        }
    }

    #[test]
    fn without_the_new_settings_the_random_stream_is_the_papers() {
        // Runs made before zoom, gamma and contrast existed must draw exactly what they drew
        // then: the paper's four numbers per ROI and not one more.
        let mut a = SmallRng::seed_from_u64(7);
        let _ = Augment::default().apply(&ramp(), 0.5, &mut a);
        let mut b = SmallRng::seed_from_u64(7);
        let _ = b.random_range(-6.0f64..=6.0);
        let _ = b.random_range(-6.0f64..=6.0);
        let _ = b.random_range(-8.0f64..=8.0);
        let _ = b.random::<f64>();
        assert_eq!(a.random::<u64>(), b.random::<u64>());
        // With a setting on, more is drawn.
        let mut c = SmallRng::seed_from_u64(7);
        let zoom = Augment {
            max_scale: 0.1,
            ..Augment::default()
        };
        let _ = zoom.apply(&ramp(), 0.5, &mut c);
        let mut d = SmallRng::seed_from_u64(7);
        let _ = Augment::default().apply(&ramp(), 0.5, &mut d);
        assert_ne!(c.random::<u64>(), d.random::<u64>());
    }
}
