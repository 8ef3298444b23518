//! Phantoms: deterministic, corners on the endplates, lesions of the depth and shape their class
//! says, class mix as requested.

use endplate::disc::geometry::DiscFrame;
use endplate::phantom::anatomy::{LABEL_BODY, LABEL_DEFECT, LABEL_DISC};
use endplate::phantom::lesion::{NOTCH_DEPTH_MM, SCHMORL_DEPTH_MM, WAVY_AMPLITUDE_MM};
use endplate::phantom::plan::class_probabilities;
use endplate::phantom::{plan_subject, render, ClassMix, Phantom};
use endplate::{Class, Level};

fn phantoms() -> Vec<Phantom> {
    (0..6)
        .map(|i| render(&plan_subject(11, i, ClassMix::Balanced, 16)))
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = render(&plan_subject(5, 3, ClassMix::Paper, 8));
    let b = render(&plan_subject(5, 3, ClassMix::Paper, 8));
    assert_eq!(a.slice, b.slice);
    assert_eq!(a.discs, b.discs);
    let c = render(&plan_subject(6, 3, ClassMix::Paper, 8));
    assert_ne!(a.slice.pixels, c.slice.pixels);
    assert!(a
        .slice
        .pixels
        .iter()
        .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0));
}

#[test]
fn geometry_is_within_the_scanner_ranges() {
    for i in 0..200 {
        let p = plan_subject(1, i, ClassMix::Paper, 16);
        assert!(
            (256..=1024).contains(&p.height) && (256..=p.height).contains(&p.width),
            "{p:?}"
        );
        assert!(
            (0.29..=0.91).contains(&p.spacing_mm),
            "spacing {}",
            p.spacing_mm
        );
    }
}

/// Defect pixels belonging to a disc, as (distance beyond the nearer endplate chord, position
/// along the endplate, which endplate), in mm.
fn defects(ph: &Phantom, k: usize) -> Vec<(f64, f64, bool)> {
    let d = &ph.discs[k];
    let sp = ph.plan.spacing_mm;
    let f = DiscFrame::from_corners(&d.corners, (ph.slice.width, ph.slice.height)).unwrap();
    let mid = |e: [endplate::Point; 2]| ((e[0].x + e[1].x) / 2.0, (e[0].y + e[1].y) / 2.0);
    let half_gap = {
        let (a, b) = (mid(f.endplates[0]), mid(f.endplates[1]));
        (((a.0 - b.0) * f.v.x + (a.1 - b.1) * f.v.y).abs()) / 2.0
    };
    let mut out = Vec::new();
    for y in 0..ph.slice.height {
        for x in 0..ph.slice.width {
            if ph.labels[y * ph.slice.width + x] != LABEL_DEFECT {
                continue;
            }
            let (dx, dy) = (x as f64 + 0.5 - f.center.x, y as f64 + 0.5 - f.center.y);
            let (pu, pv) = (dx * f.u.x + dy * f.u.y, dx * f.v.x + dy * f.v.y);
            if pu.abs() <= f.half_extent_u && pv.abs() <= half_gap + 12.0 / sp {
                out.push(((pv.abs() - half_gap) * sp, pu * sp, pv > 0.0));
            }
        }
    }
    out
}

#[test]
fn corners_lie_on_the_endplates_and_lesions_have_their_class_depth() {
    let mut seen = [0usize; 4];
    for ph in phantoms() {
        let sp = ph.plan.spacing_mm;
        let (w, h) = (ph.slice.width as i64, ph.slice.height as i64);
        for (k, d) in ph.discs.iter().enumerate() {
            // Every corner touches both a vertebral body and the disc within ~1 mm.
            let r = (1.2 / sp).ceil() as i64 + 1;
            for c in d.corners {
                let (cx, cy) = (c.x as i64, c.y as i64);
                let mut has = (false, false);
                for y in (cy - r).max(0)..(cy + r).min(h) {
                    for x in (cx - r).max(0)..(cx + r).min(w) {
                        match ph.labels[(y * w + x) as usize] {
                            LABEL_BODY => has.0 = true,
                            LABEL_DISC | LABEL_DEFECT => has.1 = true,
                            _ => {}
                        }
                    }
                }
                assert!(
                    has.0 && has.1,
                    "{} {:?}: corner {c:?} is not on an endplate",
                    ph.plan.id,
                    d.level
                );
            }

            let px = sp; // one pixel of measurement error, in mm
            let found = defects(&ph, k);
            let depth = found.iter().map(|p| p.0).fold(0.0, f64::max);
            // Extent along the endplate, per endplate (a lesion may sit on both).
            let spread = [false, true]
                .iter()
                .map(|&side| {
                    let u: Vec<f64> = found.iter().filter(|p| p.2 == side).map(|p| p.1).collect();
                    u.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                        - u.iter().copied().fold(f64::INFINITY, f64::min)
                })
                .filter(|s| s.is_finite())
                .fold(0.0, f64::max);
            let ctx = format!("{} {:?} {:?} severity {:.2}: depth {depth:.2} mm, spread {spread:.1} mm, designed {:.2}", ph.plan.id, d.level, d.class, d.severity, d.lesion_depth_mm);
            match d.class {
                Class::Normal => assert!(found.is_empty(), "{ctx}"),
                Class::Wavy => {
                    assert!(
                        d.lesion_depth_mm <= WAVY_AMPLITUDE_MM.1 * 1.2 + 1e-9,
                        "{ctx}"
                    );
                    assert!(
                        depth <= WAVY_AMPLITUDE_MM.1 * 1.3 + d.concavity_mm + px,
                        "{ctx}"
                    );
                    if d.severity > 0.5 {
                        assert!(
                            spread > 10.0,
                            "a wavy endplate undulates along its width: {ctx}"
                        );
                    }
                }
                Class::Notched => {
                    assert!(
                        (NOTCH_DEPTH_MM.0..=NOTCH_DEPTH_MM.1).contains(&d.lesion_depth_mm),
                        "{ctx}"
                    );
                    assert!(depth <= NOTCH_DEPTH_MM.1 + d.concavity_mm + px, "{ctx}");
                    assert!(spread < 7.0, "a notch is focal: {ctx}");
                }
                Class::Schmorl => {
                    assert!(
                        (SCHMORL_DEPTH_MM.0..=SCHMORL_DEPTH_MM.1).contains(&d.lesion_depth_mm),
                        "{ctx}"
                    );
                    assert!(
                        depth >= SCHMORL_DEPTH_MM.0 - d.concavity_mm - px,
                        "a Schmorl node is deep: {ctx}"
                    );
                    assert!(depth <= SCHMORL_DEPTH_MM.1 + d.concavity_mm + px, "{ctx}");
                    assert!(spread < 13.0, "{ctx}");
                }
            }
            seen[d.class.index()] += 1;
        }
    }
    assert!(
        seen.iter().all(|&n| n > 0),
        "every class rendered at least once: {seen:?}"
    );
}

#[test]
fn class_mix_matches_the_request_within_sampling_error() {
    let n_subjects = 2000;
    for mix in [ClassMix::Balanced, ClassMix::Paper] {
        let mut counts = [[0f64; 4]; 5];
        let mut expected = [[0f64; 4]; 5];
        for i in 0..n_subjects {
            let plan = plan_subject(99, i, mix, 8);
            for d in &plan.discs {
                counts[d.level.index()][d.class.index()] += 1.0;
                let p = class_probabilities(mix, d.level, plan.age);
                for c in 0..4 {
                    expected[d.level.index()][c] += p[c];
                }
            }
        }
        for l in Level::ALL {
            for c in 0..4 {
                let (got, want) = (counts[l.index()][c], expected[l.index()][c]);
                let sd = (want * (1.0 - want / n_subjects as f64)).sqrt();
                assert!(
                    (got - want).abs() < 4.0 * sd + 1.0,
                    "{mix:?} {l} class {c}: {got} vs {want:.0}"
                );
            }
        }
        let total: Vec<f64> = (0..4)
            .map(|c| (0..5).map(|l| counts[l][c]).sum::<f64>() / (5 * n_subjects) as f64)
            .collect();
        match mix {
            ClassMix::Balanced => {
                assert!(total.iter().all(|f| (f - 0.25).abs() < 0.015), "{total:?}")
            }
            ClassMix::Paper => {
                // The paper's overall mix, 36/31/23/9 %, within a few points (level and age
                // effects are combined as independent factors).
                let paper = [
                    567.0 / 1559.0,
                    485.0 / 1559.0,
                    362.0 / 1559.0,
                    145.0 / 1559.0,
                ];
                for c in 0..4 {
                    assert!(
                        (total[c] - paper[c]).abs() < 0.05,
                        "class {c}: {:.3} vs {:.3}",
                        total[c],
                        paper[c]
                    );
                }
                // Table 2's pattern: notched common high up, Schmorl's nodes rare at L5S1.
                let frac = |l: Level, c: usize| counts[l.index()][c] / n_subjects as f64;
                assert!(frac(Level::L1L2, 2) > 2.0 * frac(Level::L5S1, 2));
                assert!(frac(Level::L5S1, 3) < 0.05);
            }
        }
    }
}
