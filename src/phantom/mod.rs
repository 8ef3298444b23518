//! Synthetic sagittal T2 lumbar phantoms with known lesions and known corners: the project's
//! stand-in for labelled patient data in tests, demos, benchmarks and the bundled model.
//!
//! A subject is planned first ([`plan::plan_subject`]: age, per-disc class, severity,
//! distractors, image geometry), then rendered ([`render`]): anatomy in the spine's curvilinear
//! frame, 2x2 supersampling for partial volume, coil bias field, blur, Rician noise, scanner
//! scaling and quantisation to 8 or 16 bits. Everything is seeded: the same plan gives the same
//! bytes on every machine, in the browser too.
//!
//! Stage 3, beside `manifest`: a phantom is what a decoded slice and its clicked corners would
//! be, so this uses `image` (the [`Slice`] it renders), `disc` (the corner [`Point`]s) and the
//! shared vocabulary, and nothing that comes later; the anatomy is split into its frame
//! (`curve`), its shapes (`anatomy`) and their T2 signal (`tissue`).

pub mod anatomy;
pub mod curve;
pub mod lesion;
pub mod plan;
pub mod texture;
mod tissue;

use crate::class::{Class, Level};
use crate::disc::geometry::Point;
use crate::disc::roi::{Roi, RoiParams};
use crate::image::contrast::Stretch;
use crate::image::slice::Slice;
use anatomy::Anatomy;
pub use plan::{plan_subject, ClassMix, SubjectPlan};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Ground truth of one rendered lumbar disc.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiscTruth {
    pub level: Level,
    pub class: Class,
    /// Pixel coordinates: upper body's lower endplate (anterior, posterior), then lower body's
    /// upper endplate (anterior, posterior).
    pub corners: [Point; 4],
    pub severity: f64,
    pub endplates: u8,
    /// Deepest designed lesion depth (mm); 0 for normal discs.
    pub lesion_depth_mm: f64,
    /// Deepest natural endplate concavity of the two endplates (mm).
    pub concavity_mm: f64,
    pub degeneration: f64,
    pub modic: bool,
}

/// A rendered subject.
#[derive(Debug, Clone)]
pub struct Phantom {
    pub plan: SubjectPlan,
    pub slice: Slice,
    /// Noise-free tissue label per pixel (see `anatomy::LABEL_*`).
    pub labels: Vec<u8>,
    pub discs: Vec<DiscTruth>,
    /// Every disc above the sacrum, thoracic ones included, as (discs above the sacrum, corners
    /// in pixels, SPEC order): the detector's truth.
    pub spine_discs: Vec<(usize, [Point; 4])>,
}

impl Phantom {
    /// Where disc `k`'s designed lesion lies in its ROI: per ROI pixel the share of it that is
    /// endplate defect (`anatomy::LABEL_DEFECT`), cut with the same geometry as the disc's ROI
    /// from the noise-free label map (all zero for a normal disc). Evidence maps are checked
    /// against it.
    pub fn lesion_roi(&self, k: usize, p: &RoiParams) -> crate::Result<Roi> {
        let disc = self.discs.get(k).ok_or_else(|| {
            crate::Error::Invalid(format!("no disc {k} in a phantom of {}", self.discs.len()))
        })?;
        let (w, h) = (self.slice.width, self.slice.height);
        let mask = self
            .labels
            .iter()
            .map(|&l| if l == anatomy::LABEL_DEFECT { 1.0 } else { 0.0 })
            .collect();
        let slice = Slice::new(w, h, mask, 8)?;
        let unit = Stretch {
            low: 0.0,
            high: 1.0,
        };
        let p = RoiParams {
            pad_value: 0.0,
            ..p.own_roi_only()
        };
        Roi::extract_with(&slice, &unit, &disc.corners, &p)
    }
}

/// Render a planned subject.
pub fn render(plan: &SubjectPlan) -> Phantom {
    let (w, h, sp) = (plan.width, plan.height, plan.spacing_mm);
    let anatomy = Anatomy::new(plan, w as f64 * sp, h as f64 * sp);
    let mut rng = SmallRng::seed_from_u64(plan.seed ^ 0x0BAD_5EED);

    let mut signal = vec![0.0f32; w * h];
    let mut labels = vec![0u8; w * h];
    let mut guess = 0.0;
    for y in 0..h {
        // Start each row from the centre line's s near this row for fast Newton convergence.
        let (s_row, _) = anatomy
            .curve
            .coords(0.5 * w as f64 * sp, (y as f64 + 0.5) * sp, guess);
        guess = s_row;
        let mut g = s_row;
        for x in 0..w {
            let mut acc = 0.0;
            for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let (s, n) = anatomy
                    .curve
                    .coords((x as f64 + ox) * sp, (y as f64 + oy) * sp, g);
                g = s;
                acc += anatomy.tissue(s, n).0;
            }
            let (s, n) = anatomy
                .curve
                .coords((x as f64 + 0.5) * sp, (y as f64 + 0.5) * sp, g);
            labels[y * w + x] = anatomy.tissue(s, n).1;
            signal[y * w + x] = (acc / 4.0) as f32;
        }
    }

    // Receive-coil bias: brighter posteriorly (the spine coil is under the patient's back), with
    // a slow random modulation.
    let bias_noise = texture::ValueNoise::new(rng.random(), 120.0);
    let (b0, b1) = (rng.random_range(0.6..0.8), rng.random_range(0.25..0.6));
    for y in 0..h {
        for x in 0..w {
            let (xm, ym) = (x as f64 * sp, y as f64 * sp);
            let b = b0 + b1 * x as f64 / w as f64 + 0.12 * bias_noise.fractal(xm, ym, 2);
            signal[y * w + x] *= b as f32;
        }
    }
    texture::gaussian_blur(&mut signal, w, h, rng.random_range(0.3..0.8));
    let noise = rng.random_range(0.004..0.02);
    texture::rician(&mut signal, noise, rng.random());

    // Scanner scaling and quantisation.
    let peak = if plan.bits == 8 {
        rng.random_range(200.0..250.0)
    } else {
        rng.random_range(800.0..4000.0)
    };
    let max_v = if plan.bits == 8 { 255.0 } else { 65535.0 };
    let mut sorted: Vec<f32> = signal.iter().copied().step_by(7).collect();
    sorted.sort_by(f32::total_cmp);
    let p995 = sorted[(sorted.len() as f64 * 0.995) as usize].max(1e-3) as f64;
    let scale = peak / p995;
    let pixels: Vec<f32> = signal
        .iter()
        .map(|&v| (v as f64 * scale).round().clamp(0.0, max_v) as f32)
        .collect();
    let mut slice = Slice::new(w, h, pixels, plan.bits).expect("buffer matches size");
    slice.spacing_mm = Some((sp, sp));

    let discs = plan
        .discs
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let c = anatomy.disc_corners(k);
            DiscTruth {
                level: d.level,
                class: d.class,
                corners: c.map(|p| Point::new(p[0] / sp, p[1] / sp)),
                severity: d.severity,
                endplates: d.endplates,
                lesion_depth_mm: if d.class == Class::Normal {
                    0.0
                } else {
                    anatomy.disc_lesion_depth(k)
                },
                concavity_mm: anatomy.disc_concavity(k),
                degeneration: d.degeneration,
                modic: d.modic,
            }
        })
        .collect();
    let spine_discs = anatomy
        .spine_disc_corners()
        .into_iter()
        .map(|(k, c)| (k, c.map(|p| Point::new(p[0] / sp, p[1] / sp))))
        .collect();
    Phantom {
        plan: plan.clone(),
        slice,
        labels,
        discs,
        spine_discs,
    }
}
