//! The phantom's anatomy in the spine's own curvilinear coordinates: `s` runs down the centre
//! line of the vertebral bodies (mm), `n` across it (mm, positive posterior). Bodies, discs,
//! canal, posterior elements and soft tissue are simple shapes in (s, n), so the lordotic curve
//! bends all of them together the way a real spine does.
//!
//! This file draws the subject's shapes and places them; the frame itself is in
//! [`super::curve`], and what each shape looks like on T2 (the second `impl Anatomy` block) in
//! `tissue.rs`.

use super::curve::Curve;
use super::lesion::Profile;
use super::plan::SubjectPlan;
use super::texture::ValueNoise;
use crate::class::Class;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Tissue labels of the truth map.
pub const LABEL_OTHER: u8 = 0;
pub const LABEL_BODY: u8 = 1;
pub const LABEL_DISC: u8 = 2;
pub const LABEL_CSF: u8 = 3;
/// Disc material inside an endplate defect (beyond the smooth endplate it replaced).
pub const LABEL_DEFECT: u8 = 4;

/// A vertebral body.
pub struct Body {
    pub name: &'static str,
    pub top: f64,
    pub height: f64,
    pub half_width: f64,
    pub concavity: [f64; 2],
    pub corner_radius: f64,
    /// Tilt of the top endplate (mm at the anterior edge), from the disc above's wedge.
    pub top_wedge: f64,
    pub marrow: f64,
    /// Profiles of the top (0) and bottom (1) endplates: natural roughness plus any lesion.
    pub profiles: [Vec<Profile>; 2],
    /// Modic-like band under the top (0) / bottom (1) endplate: (thickness mm, intensity change).
    pub modic: [Option<(f64, f64)>; 2],
    /// Bright focal fat islands (hemangioma-like): (n, s offset from top, radius).
    pub islands: Vec<(f64, f64, f64)>,
}

impl Body {
    pub(super) fn baseline(&self, end: usize, n: f64) -> f64 {
        let q = 1.0 - (n / self.half_width).powi(2);
        let c = self.concavity[end] * q.max(0.0);
        if end == 0 {
            self.top + c - self.top_wedge * n / self.half_width
        } else {
            self.top + self.height - c
        }
    }

    /// The endplate's position along s at `n`: top (0) or bottom (1), with roughness and lesions.
    pub fn endplate(&self, end: usize, n: f64) -> f64 {
        let d: f64 = self.profiles[end]
            .iter()
            .map(|p| p.depth(n, self.half_width))
            .sum();
        if end == 0 {
            self.baseline(0, n) + d
        } else {
            self.baseline(1, n) - d
        }
    }

    pub(super) fn inside(&self, s: f64, n: f64) -> bool {
        let hw = self.half_width;
        if n.abs() > hw {
            return false;
        }
        let (top, bot) = (self.endplate(0, n), self.endplate(1, n));
        if s < top || s > bot {
            return false;
        }
        // Rounded corners.
        let r = self.corner_radius;
        let dn = n.abs() - (hw - r);
        if dn > 0.0 {
            let dt = top + r - s;
            let db = s - (bot - r);
            if dt > 0.0 && dn * dn + dt * dt > r * r {
                return false;
            }
            if db > 0.0 && dn * dn + db * db > r * r {
                return false;
            }
        }
        true
    }
}

/// An intervertebral disc between bodies `i` and `i + 1`.
pub struct Disc {
    pub nucleus: f64,
    pub annulus: f64,
    pub bulge: f64,
    pub cleft: bool,
    /// Rudimentary sacral discs are a thin dark line.
    pub rudimentary: bool,
}

pub struct Anatomy {
    pub curve: Curve,
    pub bodies: Vec<Body>,
    pub discs: Vec<Disc>,
    /// Index in `bodies` of L1.
    pub l1: usize,
    pub(super) canal_ap: f64,
    pub(super) csf: f64,
    pub(super) fat: f64,
    pub(super) muscle: f64,
    pub(super) spinous_length: f64,
    pub(super) skin_n: f64,
    pub(super) aorta: Option<(f64, f64)>,
    pub(super) conus_end: f64,
    pub(super) roots: Vec<(f64, f64)>,
    pub(super) texture: ValueNoise,
    pub(super) soft: ValueNoise,
    pub(super) abdomen_depth: f64,
}

const NAMES: [&str; 10] = [
    "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", "S2",
];

impl Anatomy {
    /// Build the subject's anatomy in mm, placed in an image `width_mm` x `height_mm`.
    pub fn new(plan: &SubjectPlan, width_mm: f64, height_mm: f64) -> Anatomy {
        let mut rng = SmallRng::seed_from_u64(plan.seed ^ 0xA5A5_5A5A);
        let size = rng.random_range(0.85..1.15);
        let heights = [21.0, 22.0, 23.5, 25.0, 26.0, 27.0, 27.0, 26.0, 28.0, 20.0];
        let widths = [30.0, 32.0, 34.0, 36.0, 38.0, 40.0, 42.0, 44.0, 42.0, 34.0];
        let disc_heights = [5.0, 5.5, 6.5, 8.0, 9.0, 10.0, 11.0, 10.0, 2.0];
        let age = plan.age;
        let marrow =
            (0.38 + 0.004 * (age - 20.0)).clamp(0.35, 0.62) + rng.random_range(-0.04..0.04);

        let mut bodies = Vec::new();
        let mut discs = Vec::new();
        let mut s = 0.0;
        let l1 = 3;
        for i in 0..NAMES.len() {
            let mut profiles: [Vec<Profile>; 2] = [
                vec![Profile::rough(&mut rng)],
                vec![Profile::rough(&mut rng)],
            ];
            // Lesions of the lumbar disc above (this body's top) and below (its bottom).
            let hw = 0.5 * widths[i] * size;
            let disc_above = i.checked_sub(l1 + 1).and_then(|k| plan.discs.get(k));
            let disc_below = i.checked_sub(l1).and_then(|k| plan.discs.get(k));
            if let Some(d) = disc_above {
                if d.endplates & 2 != 0 {
                    profiles[0].extend(Profile::lesion(
                        d.class, d.severity, d.position, hw, &mut rng,
                    ));
                }
            }
            if let Some(d) = disc_below {
                if d.endplates & 1 != 0 {
                    profiles[1].extend(Profile::lesion(
                        d.class,
                        d.severity,
                        -d.position,
                        hw,
                        &mut rng,
                    ));
                }
            }
            let modic_band =
                |rng: &mut SmallRng| (rng.random_range(2.0..6.0), rng.random_range(0.12..0.3));
            let modic = [
                disc_above.filter(|d| d.modic).map(|_| modic_band(&mut rng)),
                disc_below
                    .filter(|d| d.modic && rng.random::<bool>())
                    .map(|_| modic_band(&mut rng)),
            ];
            let height = heights[i] * size * rng.random_range(0.95..1.05);
            let islands = if rng.random::<f64>() < 0.15 {
                vec![(
                    rng.random_range(-0.6..0.6) * hw,
                    rng.random_range(0.3..0.7) * height,
                    rng.random_range(2.0..5.0),
                )]
            } else {
                vec![]
            };
            let wedge = if i > 0 {
                discs_wedge(i - 1) * disc_heights[i - 1]
            } else {
                0.0
            };
            bodies.push(Body {
                name: NAMES[i],
                top: s,
                height,
                half_width: hw,
                concavity: [rng.random_range(0.4..1.6), rng.random_range(0.4..1.6)],
                corner_radius: rng.random_range(1.5..3.0),
                top_wedge: wedge,
                marrow: marrow + rng.random_range(-0.03..0.03),
                profiles,
                modic,
                islands,
            });
            s += height;
            if i + 1 < NAMES.len() {
                let lumbar = i.checked_sub(l1).and_then(|k| plan.discs.get(k));
                let degeneration = lumbar.map(|d| d.degeneration).unwrap_or(0.2);
                let rudimentary = i >= 8;
                let h = disc_heights[i]
                    * size
                    * (1.0 - 0.45 * degeneration)
                    * rng.random_range(0.9..1.1);
                discs.push(Disc {
                    nucleus: if rudimentary {
                        0.2
                    } else {
                        0.92 - 0.65 * degeneration + rng.random_range(-0.04..0.04)
                    },
                    annulus: 0.22 + rng.random_range(-0.04..0.04),
                    bulge: rng.random_range(0.3..1.5) + 1.5 * degeneration,
                    cleft: age > 30.0 && rng.random::<f64>() < 0.6,
                    rudimentary,
                });
                s += h;
            }
        }
        // Lordosis: the tangent turns posteriorly going down through the lumbar spine and the
        // top of the sacrum; the thoracolumbar junction above is nearly straight.
        let l1_top = bodies[l1].top;
        let s1_top = bodies[l1 + 5].top;
        let lordosis = rng.random_range(0.45..0.85);
        let sacral_turn = rng.random_range(0.2..0.45);
        let tilt = rng.random_range(-0.12..0.12);
        let theta = move |s: f64| {
            let lumbar = ((s - l1_top) / (s1_top - l1_top)).clamp(0.0, 1.0);
            let sacral = ((s - s1_top) / 35.0).clamp(0.0, 1.0);
            tilt + lordosis * (lumbar - 0.5) + sacral_turn * sacral
        };
        // Place the L3 centre so that L1..S1 sit inside the image.
        let span_mid = 0.5 * (bodies[l1].top + s1_top);
        let probe = Curve::new([0.0, 0.0], -200.0, s + 200.0, theta);
        let mid_pt = probe.point(span_mid, 0.0);
        let target = [
            width_mm * rng.random_range(0.38..0.5),
            height_mm * 0.5 + rng.random_range(-0.04..0.04) * height_mm,
        ];
        let origin = [target[0] - mid_pt[0], target[1] - mid_pt[1]];
        // Re-sample from -200 so that the origin shift applies to the whole line.
        let first = probe.point(-200.0, 0.0);
        let curve = Curve::new(
            [first[0] + origin[0], first[1] + origin[1]],
            -200.0,
            s + 200.0,
            theta,
        );

        let canal_ap = rng.random_range(12.0..18.0);
        let root_count = rng.random_range(5..9);
        let conus_end = bodies[l1].top + rng.random_range(0.3..1.4) * bodies[l1].height;
        let roots = (0..root_count)
            .map(|i| {
                let f = 0.35 + 0.55 * i as f64 / root_count as f64;
                let exit =
                    bodies[l1 + 1 + (i * 5 / root_count).min(4)].top + rng.random_range(0.0..20.0);
                (f, exit)
            })
            .collect();
        Anatomy {
            curve,
            bodies,
            discs,
            l1,
            canal_ap,
            csf: rng.random_range(0.9..1.0),
            fat: rng.random_range(0.72..0.95),
            muscle: rng.random_range(0.2..0.32),
            spinous_length: rng.random_range(18.0..28.0),
            skin_n: rng.random_range(55.0..90.0),
            aorta: (rng.random::<f64>() < 0.6)
                .then(|| (rng.random_range(3.0..8.0), rng.random_range(14.0..22.0))),
            conus_end,
            roots,
            texture: ValueNoise::new(rng.random(), 2.5),
            soft: ValueNoise::new(rng.random(), 9.0),
            abdomen_depth: rng.random_range(90.0..200.0),
        }
    }

    /// Which body a curvilinear s falls in nominally, or the disc below body `i`.
    pub(super) fn segment(&self, s: f64) -> (usize, bool) {
        let i = self
            .bodies
            .partition_point(|b| b.top <= s)
            .saturating_sub(1);
        let b = &self.bodies[i];
        (i, s > b.top + b.height && i + 1 < self.bodies.len())
    }

    /// Half width of the column (body, or disc with its bulge) at s.
    pub(super) fn column_half_width(&self, s: f64) -> f64 {
        let (i, in_disc) = self.segment(s);
        let b = &self.bodies[i];
        if in_disc {
            let nb = &self.bodies[i + 1];
            let t =
                ((s - b.top - b.height) / (nb.top - b.top - b.height).max(1e-6)).clamp(0.0, 1.0);
            b.half_width
                + (nb.half_width - b.half_width) * t
                + self.discs[i].bulge * (std::f64::consts::PI * t).sin()
        } else {
            b.half_width
        }
    }

    /// The four ground-truth corners of lumbar disc `k` (0 = L1L2) in image mm: the corners of
    /// the upper body's lower endplate, then of the lower body's upper endplate.
    pub fn disc_corners(&self, k: usize) -> [[f64; 2]; 4] {
        self.corners_below(self.l1 + k)
    }

    /// Every true disc of the spine, thoracic ones included (the detector must learn that
    /// those are discs too), as (discs above the sacrum, corners in mm): 0 = L5S1.
    pub fn spine_disc_corners(&self) -> Vec<(usize, [[f64; 2]; 4])> {
        let l5 = self.l1 + 4;
        (0..=l5.min(self.bodies.len().saturating_sub(2)))
            .map(|i| (l5 - i, self.corners_below(i)))
            .collect()
    }

    /// The corners of the disc below body `i`.
    fn corners_below(&self, i: usize) -> [[f64; 2]; 4] {
        let (up, down) = (&self.bodies[i], &self.bodies[i + 1]);
        let at = |b: &Body, end: usize, sign: f64| {
            let n = sign * (b.half_width - 0.5 * b.corner_radius);
            self.curve.point(b.endplate(end, n), n)
        };
        [
            at(up, 1, -1.0),
            at(up, 1, 1.0),
            at(down, 0, -1.0),
            at(down, 0, 1.0),
        ]
    }

    /// Deepest lesion on lumbar disc `k`'s two endplates (mm), for the truth file.
    pub fn disc_lesion_depth(&self, k: usize) -> f64 {
        let (up, down) = (&self.bodies[self.l1 + k], &self.bodies[self.l1 + k + 1]);
        up.profiles[1]
            .iter()
            .chain(&down.profiles[0])
            .filter(|p| !matches!(p, Profile::Rough { .. }))
            .map(|p| p.max_depth())
            .fold(0.0, f64::max)
    }

    /// The deepest concavity of the two endplates of lumbar disc `k` (mm).
    pub fn disc_concavity(&self, k: usize) -> f64 {
        self.bodies[self.l1 + k].concavity[1].max(self.bodies[self.l1 + k + 1].concavity[0])
    }

    pub fn class_of(&self, plan: &SubjectPlan, k: usize) -> Class {
        plan.discs[k].class
    }
}

/// Extra anterior height of the lower lumbar discs (fraction of disc height): the wedge that
/// makes L5S1 visibly taller in front.
fn discs_wedge(i: usize) -> f64 {
    match i {
        6 => 0.12, // L4L5 (index of the disc below L4 among T10..S2 bodies)
        7 => 0.3,  // L5S1
        _ => 0.0,
    }
}
