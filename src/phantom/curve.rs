//! The spine's curvilinear frame: the centre line of the vertebral bodies, sampled densely with
//! its tangents, and the maps between image millimetres and (s, n), where `s` runs down the line
//! and `n` across it (positive posterior). Apart from the anatomy so the frame, which any shape
//! may be placed in, is not tangled with what the shapes are.

/// The centre line, sampled densely, with tangents.
pub struct Curve {
    s0: f64,
    step: f64,
    pts: Vec<[f64; 2]>,
    tan: Vec<[f64; 2]>,
}

impl Curve {
    pub(super) fn new(origin: [f64; 2], s0: f64, s1: f64, theta: impl Fn(f64) -> f64) -> Curve {
        let step = 0.25;
        let n = ((s1 - s0) / step).ceil() as usize + 1;
        let mut pts = Vec::with_capacity(n);
        let mut tan = Vec::with_capacity(n);
        let mut p = origin;
        for i in 0..n {
            let s = s0 + i as f64 * step;
            let th = theta(s);
            let t = [th.sin(), th.cos()];
            pts.push(p);
            tan.push(t);
            let tm = theta(s + 0.5 * step);
            p = [p[0] + step * tm.sin(), p[1] + step * tm.cos()];
        }
        Curve { s0, step, pts, tan }
    }

    fn at(&self, s: f64) -> ([f64; 2], [f64; 2]) {
        let f = ((s - self.s0) / self.step).clamp(0.0, (self.pts.len() - 2) as f64);
        let i = f.floor() as usize;
        let t = f - i as f64;
        let lerp = |a: [f64; 2], b: [f64; 2]| [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
        let p = lerp(self.pts[i], self.pts[i + 1]);
        let tg = lerp(self.tan[i], self.tan[i + 1]);
        let l = (tg[0] * tg[0] + tg[1] * tg[1]).sqrt();
        (p, [tg[0] / l, tg[1] / l])
    }

    /// Image point (mm) of curvilinear (s, n).
    pub fn point(&self, s: f64, n: f64) -> [f64; 2] {
        let (p, t) = self.at(s);
        [p[0] + n * t[1], p[1] - n * t[0]]
    }

    /// Curvilinear (s, n) of an image point (mm), by Newton steps from `guess`.
    pub fn coords(&self, x: f64, y: f64, guess: f64) -> (f64, f64) {
        let mut s = guess;
        let mut n = 0.0;
        for _ in 0..6 {
            let (p, t) = self.at(s);
            let d = [x - p[0], y - p[1]];
            let ds = d[0] * t[0] + d[1] * t[1];
            n = d[0] * t[1] - d[1] * t[0];
            s += ds;
            if ds.abs() < 1e-3 {
                break;
            }
        }
        (s, n)
    }
}
