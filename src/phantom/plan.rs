//! What a phantom subject will look like, decided before any pixel is drawn: age, the lesion
//! class of each lumbar disc (after the paper's Tables 1 and 2, or balanced), severities and
//! the anatomy's random parameters. Cheap, so class-mix statistics can be tested on thousands.

use crate::class::{Class, Level};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// How lesion classes are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassMix {
    /// The paper's frequencies by level (Table 2) and age band (Table 1).
    Paper,
    /// A quarter each.
    Balanced,
}

impl std::str::FromStr for ClassMix {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<ClassMix> {
        match s.to_ascii_lowercase().as_str() {
            "paper" => Ok(ClassMix::Paper),
            "balanced" => Ok(ClassMix::Balanced),
            _ => Err(crate::Error::Unknown {
                what: "class mix",
                value: s.into(),
                expected: "paper, balanced".into(),
            }),
        }
    }
}

/// Table 2: counts by level (rows L1L2..L5S1), columns normal, wavy, notched, Schmorl.
pub const BY_LEVEL: [[f64; 4]; 5] = [
    [105.0, 97.0, 109.0, 40.0],
    [123.0, 79.0, 126.0, 30.0],
    [137.0, 79.0, 83.0, 43.0],
    [127.0, 106.0, 28.0, 28.0],
    [75.0, 124.0, 16.0, 4.0],
];
/// Table 1: counts by age band 10-20, 21-30, ..., 81-90.
pub const BY_AGE: [[f64; 4]; 8] = [
    [25.0, 10.0, 13.0, 1.0],
    [32.0, 13.0, 26.0, 5.0],
    [124.0, 50.0, 51.0, 8.0],
    [134.0, 90.0, 86.0, 21.0],
    [130.0, 118.0, 83.0, 22.0],
    [119.0, 131.0, 63.0, 37.0],
    [2.0, 57.0, 29.0, 37.0],
    [0.0, 16.0, 11.0, 14.0],
];
/// The paper's overall counts (567/485/362/145).
pub const OVERALL: [f64; 4] = [567.0, 485.0, 362.0, 145.0];

/// P(class | level, age) under the paper's mix: level and age effects combined as independent
/// likelihood ratios against the overall frequencies, then normalised.
pub fn class_probabilities(mix: ClassMix, level: Level, age: f64) -> [f64; 4] {
    match mix {
        ClassMix::Balanced => [0.25; 4],
        ClassMix::Paper => {
            let band = (((age - 10.0) / 10.0).floor().max(0.0) as usize).min(7);
            let lv = BY_LEVEL[level.index()];
            let ag = BY_AGE[band];
            let (sl, sa, so): (f64, f64, f64) =
                (lv.iter().sum(), ag.iter().sum(), OVERALL.iter().sum());
            let raw: [f64; 4] = std::array::from_fn(|c| {
                // Smoothed so an empty cell (no normal discs past 80) stays possible but rare.
                let pl = (lv[c] + 0.5) / sl;
                let pa = (ag[c] + 0.5) / sa;
                let po = OVERALL[c] / so;
                pl * pa / po
            });
            let z: f64 = raw.iter().sum();
            raw.map(|r| r / z)
        }
    }
}

/// One disc's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscPlan {
    pub level: Level,
    pub class: Class,
    /// 0 = barely visible, 1 = obvious.
    pub severity: f64,
    /// Which endplates carry the lesion: 1 upper vertebra's lower endplate, 2 lower vertebra's
    /// upper endplate, 3 both. 0 for normal discs.
    pub endplates: u8,
    /// Position of a focal lesion along the endplate, as a fraction of the half width (-1..1,
    /// negative anterior).
    pub position: f64,
    /// Degeneration 0 (healthy, bright nucleus) .. 1 (dark, thin): a distractor.
    pub degeneration: f64,
    /// Modic-like marrow change next to the endplate: a distractor, not a lesion.
    pub modic: bool,
}

/// Everything random about one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectPlan {
    pub id: String,
    /// Seed for the anatomy and noise (the plan's own draws come from it too).
    pub seed: u64,
    pub age: f64,
    pub discs: Vec<DiscPlan>,
    pub width: usize,
    pub height: usize,
    pub spacing_mm: f64,
    pub bits: u16,
}

/// Image sizes a scanner produces.
const SIZES: [usize; 8] = [256, 320, 384, 448, 512, 640, 768, 1024];

/// Plan subject `index` of a data set with seed `seed`: independent of every other subject, so
/// subjects can be rendered in parallel and in any order and still come out the same.
pub fn plan_subject(seed: u64, index: usize, mix: ClassMix, bits: u16) -> SubjectPlan {
    let subject_seed = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index as u64)
        .wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ 0x5851_F42D_4C95_7F2D;
    let mut rng = SmallRng::seed_from_u64(subject_seed);
    let age: f64 = Normal::new(52.0, 15.0).expect("sd > 0").sample(&mut rng);
    let age = age.clamp(10.0, 88.0);
    let discs = Level::ALL
        .iter()
        .map(|&level| {
            let p = class_probabilities(mix, level, age);
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut class = Class::Schmorl;
            for (c, pc) in p.iter().enumerate() {
                acc += pc;
                if u < acc {
                    class = Class::ALL[c];
                    break;
                }
            }
            let endplates = match class {
                Class::Normal => 0,
                _ => [1u8, 2, 3][rng.random_range(0..10usize).min(9) / 4],
            };
            let lower_level = level.index() as f64 / 4.0;
            let degeneration =
                ((age - 25.0) / 60.0 + 0.3 * lower_level + rng.random_range(-0.35..0.35))
                    .clamp(0.0, 1.0);
            DiscPlan {
                level,
                class,
                severity: rng.random(),
                endplates,
                position: rng.random_range(-0.6..0.6),
                degeneration,
                modic: rng.random::<f64>() < 0.08 + 0.12 * degeneration,
            }
        })
        .collect();
    let width_i = rng.random_range(0..SIZES.len());
    let height = SIZES[width_i];
    // Portrait or square, as sagittal lumbar series are.
    let aspect: f64 = rng.random_range(0.6..=1.0);
    let width = ((height as f64 * aspect / 16.0).round() as usize * 16).clamp(256, height);
    // Field of view tall enough for L1..S1 and some context, spacing inside the scanner's usual 0.3-0.9 mm.
    let lo = (220.0f64).max(0.3 * height as f64);
    let hi = (340.0f64).min(0.9 * height as f64).max(lo);
    let fov = rng.random_range(lo..=hi);
    SubjectPlan {
        id: format!("ph{index:05}"),
        seed: subject_seed,
        age,
        discs,
        width,
        height,
        spacing_mm: fov / height as f64,
        bits,
    }
}
