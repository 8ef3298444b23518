//! What the scanner sees at each point of the anatomy: the T2 signal and truth label of bodies
//! (marrow, cortex, Modic bands, fat islands, the basivertebral vein), discs (nucleus, annulus,
//! clefts, endplate defects), the canal and posterior elements, and the soft tissue in front.
//! A second `impl Anatomy` block, apart from the geometry in [`super::anatomy`] that places the
//! shapes: the intensity model is what gets tuned when phantoms are compared with real slices.

use super::anatomy::{Anatomy, Body, LABEL_BODY, LABEL_CSF, LABEL_DEFECT, LABEL_DISC, LABEL_OTHER};
use super::lesion::ROUGHNESS_MM;

impl Anatomy {
    /// T2 signal (before bias, noise and scaling) and truth label at (s, n).
    pub fn tissue(&self, s: f64, n: f64) -> (f64, u8) {
        let (i, _) = self.segment(s);
        // Bodies near s (endplate lesions and wedges reach across the nominal boundaries).
        for j in i.saturating_sub(1)..(i + 2).min(self.bodies.len()) {
            let b = &self.bodies[j];
            if b.inside(s, n) {
                return (self.marrow(b, s, n), LABEL_BODY);
            }
        }
        // Disc between body k and k + 1?
        for k in i.saturating_sub(1)..(i + 1).min(self.discs.len()) {
            let (up, down) = (&self.bodies[k], &self.bodies[k + 1]);
            let (a, b) = (up.endplate(1, n), down.endplate(0, n));
            if s >= a && s <= b {
                let t = ((s - a) / (b - a).max(1e-6)).clamp(0.0, 1.0);
                let hw = up.half_width
                    + (down.half_width - up.half_width) * t
                    + self.discs[k].bulge * (std::f64::consts::PI * t).sin();
                if n.abs() <= hw {
                    return self.disc(k, s, n, t, hw, up, down);
                }
            }
        }
        let last = self.bodies.last().expect("bodies");
        if s > last.top + last.height + 1.0 {
            // Below the sacrum: pelvic soft tissue.
            return if n < 0.0 {
                self.anterior(s, -n)
            } else {
                (
                    self.muscle + 0.3 * self.soft.fractal(n, s, 2).max(0.0),
                    LABEL_OTHER,
                )
            };
        }
        let hw = self.column_half_width(s);
        if n > hw {
            self.posterior(s, n - hw, hw)
        } else if n < -hw {
            self.anterior(s, -n - hw)
        } else {
            // Between a body's rounded corner and the column edge: ligament/periosteum.
            (0.15, LABEL_OTHER)
        }
    }

    fn marrow(&self, b: &Body, s: f64, n: f64) -> f64 {
        let tex = self.texture.fractal(n, s, 3);
        let mut v = b.marrow + 0.1 * tex + 0.06 * self.soft.at(n * 1.5, s * 1.5);
        // Cortex: dark within ~1 mm of the endplates and a thinner rim on the walls.
        let d_top = s - b.endplate(0, n);
        let d_bot = b.endplate(1, n) - s;
        let d_wall = b.half_width - n.abs();
        let rim = |end: usize| {
            b.profiles[end]
                .iter()
                .map(|p| p.rim_mm() * (p.depth(n, b.half_width) > 0.3) as u8 as f64)
                .fold(0.0, f64::max)
        };
        let cortex = 0.9;
        if d_top < cortex + rim(0) || d_bot < cortex + rim(1) || d_wall < 0.6 {
            return 0.08 + 0.04 * tex;
        }
        for (end, d) in [(0usize, d_top), (1usize, d_bot)] {
            if let Some((thick, delta)) = b.modic[end] {
                let edge = thick * (1.0 + 0.3 * self.soft.at(n * 2.0, s));
                if d < edge && n.abs() < 0.8 * b.half_width {
                    v += delta;
                }
            }
        }
        for &(cn, cs, r) in &b.islands {
            let (dn, ds) = (n - cn, s - (b.top + cs));
            if dn * dn + ds * ds < r * r {
                v += 0.25;
            }
        }
        // Basivertebral vein: a small bright cleft in the middle of the posterior wall.
        let mid = b.top + 0.5 * b.height;
        if n > b.half_width - 5.0 && (s - mid).abs() < 1.2 * (1.0 - (b.half_width - n) / 5.0) {
            v = 0.7;
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn disc(&self, k: usize, s: f64, n: f64, t: f64, hw: f64, up: &Body, down: &Body) -> (f64, u8) {
        let d = &self.discs[k];
        // Disc material beyond the smooth endplate: inside a defect.
        let margin = 2.0 * ROUGHNESS_MM;
        let in_defect = s < up.baseline(1, n) - margin || s > down.baseline(0, n) + margin;
        if d.rudimentary {
            return (0.18, LABEL_DISC);
        }
        let rn = n / (0.72 * hw);
        let rt = (t - 0.5) / 0.32;
        let r2 = rn * rn + rt * rt;
        let nucleus = (1.0 - r2).clamp(0.0, 1.0).powf(0.4);
        let mut v = d.annulus + (d.nucleus - d.annulus) * nucleus;
        if d.cleft && (t - 0.5).abs() < 0.06 && rn.abs() < 0.8 {
            v -= 0.25 * (d.nucleus - d.annulus);
        }
        if in_defect {
            v = 0.55 * d.nucleus + 0.45 * d.annulus;
            return (v, LABEL_DEFECT);
        }
        // Outer annulus fibres are darkest.
        if n.abs() > hw - 1.5 {
            v = d.annulus * 0.7;
        }
        (v + 0.02 * self.texture.at(n, s), LABEL_DISC)
    }

    fn posterior(&self, s: f64, d: f64, _hw: f64) -> (f64, u8) {
        let pll = 1.0;
        if d < pll {
            return (0.1, LABEL_OTHER);
        }
        // The canal narrows a little at disc levels where the flavum bulges in.
        let (i, in_disc) = self.segment(s);
        let canal_end = pll + self.canal_ap - if in_disc { 2.0 } else { 0.0 };
        if d < canal_end {
            let c = d - pll;
            if s < self.conus_end + 12.0 {
                let taper = ((self.conus_end + 12.0 - s) / 12.0).clamp(0.0, 1.0);
                if (c - 0.55 * self.canal_ap).abs() < 4.0 * taper {
                    return (0.42, LABEL_OTHER);
                }
            }
            for &(f, exit) in &self.roots {
                if s > self.conus_end && s < exit {
                    let drift = ((s - self.conus_end) / (exit - self.conus_end)).powi(2) * 0.3;
                    if (c - (f - drift) * self.canal_ap).abs() < 0.35 {
                        return (0.35, LABEL_CSF);
                    }
                }
            }
            return (self.csf, LABEL_CSF);
        }
        let p = d - canal_end;
        let skin = self.skin_n;
        if p > skin {
            return (0.0, LABEL_OTHER);
        }
        if p > skin - 1.5 {
            return (0.3, LABEL_OTHER);
        }
        // Spinous process of the vertebra whose body spans s, sloping caudally.
        for j in i.saturating_sub(1)..(i + 1).min(self.bodies.len()) {
            let b = &self.bodies[j];
            if j > self.l1 + 5 {
                continue;
            }
            let centre = b.top + 0.55 * b.height + 0.45 * p;
            let half = 0.3 * b.height * (1.0 - 0.45 * (p / self.spinous_length).min(1.0));
            if p < self.spinous_length && (s - centre).abs() < half {
                let edge = half - (s - centre).abs();
                return (
                    if edge < 1.0 || p > self.spinous_length - 1.0 {
                        0.1
                    } else {
                        b.marrow - 0.03
                    },
                    LABEL_OTHER,
                );
            }
        }
        if p < 3.0 && in_disc {
            return (0.14, LABEL_OTHER); // ligamentum flavum
        }
        if p < self.spinous_length + 8.0 {
            let m = self.soft.fractal(p, s * 0.6, 2);
            return (self.muscle + 0.35 * m.max(0.0), LABEL_OTHER);
        }
        (self.fat + 0.05 * self.soft.at(p, s), LABEL_OTHER)
    }

    fn anterior(&self, s: f64, d: f64) -> (f64, u8) {
        if d < 1.0 {
            return (0.1, LABEL_OTHER);
        }
        if let Some((gap, diam)) = self.aorta {
            let end = self.bodies[self.l1 + 3].top;
            if s < end && d > gap && d < gap + diam {
                let wall = (d - gap).min(gap + diam - d) < 0.8;
                return (if wall { 0.35 } else { 0.04 }, LABEL_OTHER);
            }
        }
        if d > self.abdomen_depth {
            return (0.0, LABEL_OTHER);
        }
        if d > self.abdomen_depth - 15.0 {
            return (self.fat, LABEL_OTHER);
        }
        let v = 0.32
            + 0.28 * self.soft.fractal(d, s, 3)
            + 0.12 * self.texture.fractal(d * 0.5, s * 0.5, 2);
        (v.max(0.05), LABEL_OTHER)
    }
}
