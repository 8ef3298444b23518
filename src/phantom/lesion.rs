//! Endplate contour profiles: how far (mm) an endplate is pushed into its vertebral body at
//! each position along it. Each class has its own shape and a severity range from barely
//! visible to obvious; normal endplates keep a faint natural roughness so that "smooth" is not
//! a give-away.

use super::texture::ValueNoise;
use crate::class::Class;
use rand::rngs::SmallRng;
use rand::Rng;

/// Depth ranges (mm) by class at severity 0 and 1, interpolated linearly. Tests check the
/// rendered defects against these.
pub const WAVY_AMPLITUDE_MM: (f64, f64) = (0.3, 1.6);
pub const NOTCH_DEPTH_MM: (f64, f64) = (0.7, 3.0);
pub const NOTCH_WIDTH_MM: (f64, f64) = (1.5, 5.0);
pub const SCHMORL_DEPTH_MM: (f64, f64) = (2.5, 8.0);
pub const SCHMORL_WIDTH_MM: (f64, f64) = (4.0, 11.0);
/// Natural roughness of every endplate.
pub const ROUGHNESS_MM: f64 = 0.15;

fn lerp(r: (f64, f64), t: f64) -> f64 {
    r.0 + (r.1 - r.0) * t
}

#[derive(Debug, Clone)]
pub enum Profile {
    Rough {
        noise: ValueNoise,
        amp: f64,
    },
    Wavy {
        amp: f64,
        wavelength: f64,
        phase: f64,
        irregular: ValueNoise,
    },
    Notch {
        depth: f64,
        half_width: f64,
        center: f64,
        round: bool,
    },
    Schmorl {
        depth: f64,
        half_width: f64,
        center: f64,
    },
}

impl Profile {
    pub fn rough(rng: &mut SmallRng) -> Profile {
        Profile::Rough {
            noise: ValueNoise::new(rng.random(), rng.random_range(2.0..4.0)),
            amp: ROUGHNESS_MM,
        }
    }

    /// The lesion of `class` at `severity` in [0, 1], centred at `position` (fraction of the
    /// half width) on an endplate of half width `hw` (mm).
    pub fn lesion(
        class: Class,
        severity: f64,
        position: f64,
        hw: f64,
        rng: &mut SmallRng,
    ) -> Option<Profile> {
        let center = position * hw;
        match class {
            Class::Normal => None,
            Class::Wavy => Some(Profile::Wavy {
                amp: lerp(WAVY_AMPLITUDE_MM, severity),
                wavelength: rng.random_range(5.0..11.0),
                phase: rng.random_range(0.0..std::f64::consts::TAU),
                irregular: ValueNoise::new(rng.random(), rng.random_range(1.5..3.0)),
            }),
            Class::Notched => Some(Profile::Notch {
                depth: lerp(NOTCH_DEPTH_MM, severity),
                half_width: 0.5 * lerp(NOTCH_WIDTH_MM, severity * rng.random_range(0.6..1.0)),
                center,
                round: rng.random::<bool>(),
            }),
            Class::Schmorl => Some(Profile::Schmorl {
                depth: lerp(SCHMORL_DEPTH_MM, severity),
                half_width: 0.5 * lerp(SCHMORL_WIDTH_MM, severity * rng.random_range(0.7..1.0)),
                center: center * 0.7,
            }),
        }
    }

    /// Depth into the body (mm) at position `n` along the endplate of half width `hw`; negative
    /// values bulge towards the disc. Focal defects vanish towards the corners.
    pub fn depth(&self, n: f64, hw: f64) -> f64 {
        let edge = (1.0 - (n / hw).powi(8)).clamp(0.0, 1.0);
        match self {
            Profile::Rough { noise, amp } => amp * noise.at(n, 0.0),
            Profile::Wavy {
                amp,
                wavelength,
                phase,
                irregular,
            } => {
                let wave = (std::f64::consts::TAU * n / wavelength + phase).sin();
                edge * amp * (0.65 * wave + 0.55 * irregular.at(n, 17.0))
            }
            Profile::Notch {
                depth,
                half_width,
                center,
                round,
            } => {
                let t = (n - center).abs() / half_width;
                if t >= 1.0 {
                    0.0
                } else if *round {
                    edge * depth * (1.0 - t * t).sqrt()
                } else {
                    edge * depth * (1.0 - t)
                }
            }
            Profile::Schmorl {
                depth,
                half_width,
                center,
            } => {
                let t = (n - center).abs() / half_width;
                // A rounded pit with a slightly narrower mouth than its belly.
                if t >= 1.0 {
                    0.0
                } else {
                    edge * depth * (1.0 - t.powf(2.5)).sqrt()
                }
            }
        }
    }

    /// Schmorl's nodes carry a sclerotic dark rim.
    pub fn rim_mm(&self) -> f64 {
        match self {
            Profile::Schmorl { .. } => 1.2,
            _ => 0.0,
        }
    }

    /// The deepest point of a focal lesion (for the truth file).
    pub fn max_depth(&self) -> f64 {
        match self {
            Profile::Rough { amp, .. } => *amp,
            Profile::Wavy { amp, .. } => *amp * 1.2,
            Profile::Notch { depth, .. } | Profile::Schmorl { depth, .. } => *depth,
        }
    }
}
