//! Resampling a whole slice under an affine map: how the detector sees a slice (letterboxed to
//! its input size, or a zoomed crop of the spine) and how its training draws rotated, scaled and
//! shifted views. Shrinking averages a grid of bilinear taps over each output pixel's footprint,
//! as the disc ROI does, so a 1024-pixel slice and a 256-pixel one look alike to the network.

/// Maps output pixel coordinates `(u, v)` to slice coordinates:
/// `x = a u + b v + tx`, `y = c u + d v + ty` (both in the SPEC's pixel convention).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Affine {
    /// Output pixel `(u, v)` shows slice point `origin + scale * R(angle) (u, v)`.
    pub fn similarity(scale: f64, angle: f64, origin: (f64, f64)) -> Affine {
        let (s, c) = angle.sin_cos();
        Affine {
            a: scale * c,
            b: -scale * s,
            c: scale * s,
            d: scale * c,
            tx: origin.0,
            ty: origin.1,
        }
    }

    /// The whole `width x height` slice centred in a `size x size` square, aspect kept: the
    /// longer side fills it, the shorter is padded on both sides.
    pub fn letterbox(width: usize, height: usize, size: usize) -> Affine {
        Self::fit(0.0, 0.0, width as f64, height as f64, size)
    }

    /// The rectangle `[x0, x1) x [y0, y1)` centred in a `size x size` square, aspect kept.
    pub fn fit(x0: f64, y0: f64, x1: f64, y1: f64, size: usize) -> Affine {
        let scale = (x1 - x0).max(y1 - y0) / size as f64;
        let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
        let half = 0.5 * size as f64;
        Affine::similarity(scale, 0.0, (cx - half * scale, cy - half * scale))
    }

    pub fn apply(&self, u: f64, v: f64) -> (f64, f64) {
        (
            self.a * u + self.b * v + self.tx,
            self.c * u + self.d * v + self.ty,
        )
    }

    /// The map back from slice to output coordinates. `None` when the map is degenerate.
    pub fn inverse(&self) -> Option<Affine> {
        let det = self.a * self.d - self.b * self.c;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (a, b, c, d) = (self.d / det, -self.b / det, -self.c / det, self.a / det);
        Some(Affine {
            a,
            b,
            c,
            d,
            tx: -(a * self.tx + b * self.ty),
            ty: -(c * self.tx + d * self.ty),
        })
    }

    /// Slice pixels per output pixel (the geometric mean over both axes).
    pub fn scale(&self) -> f64 {
        (self.a * self.d - self.b * self.c).abs().sqrt()
    }
}

/// Where one sample point falls along one axis of the slice: the two pixels it blends (`None`
/// outside the slice) and the second one's weight. Pixel centres sit at half-integers.
#[derive(Debug, Clone, Copy)]
struct Tap {
    first: Option<usize>,
    second: Option<usize>,
    weight: f32,
    /// Whether the point is close enough to the slice to blend any of its pixels.
    inside: bool,
}

impl Tap {
    fn new(coordinate: f64, len: usize) -> Tap {
        let f = coordinate - 0.5;
        let i = f.floor();
        let pixel = |i: f64| (i >= 0.0 && i < len as f64).then_some(i as usize);
        Tap {
            first: pixel(i),
            second: pixel(i + 1.0),
            weight: (f - i) as f32,
            inside: f > -1.0 && f < len as f64,
        }
    }
}

/// Bilinear sample of `values` (row-major, `width` wide) at the point whose column and row taps
/// are `x` and `y`; `pad` outside the slice, and for the pixels beyond its edge.
fn bilinear(values: &[f32], width: usize, x: Tap, y: Tap, pad: f32) -> f32 {
    if !(x.inside && y.inside) {
        return pad;
    }
    let at = |i: Option<usize>, j: Option<usize>| match (i, j) {
        (Some(i), Some(j)) => values[j * width + i],
        _ => pad,
    };
    let top = at(x.first, y.first) * (1.0 - x.weight) + at(x.second, y.first) * x.weight;
    let bottom = at(x.first, y.second) * (1.0 - x.weight) + at(x.second, y.second) * x.weight;
    top * (1.0 - y.weight) + bottom * y.weight
}

/// Resample `values` (a `width x height` slice) into an `out_w x out_h` image whose pixel
/// `(u, v)` covers the slice region `to_slice` maps it to; `pad` where that falls outside.
pub fn warp(
    values: &[f32],
    width: usize,
    height: usize,
    to_slice: &Affine,
    out_w: usize,
    out_h: usize,
    pad: f32,
) -> Vec<f32> {
    // Taps per axis: enough to cover an output pixel's footprint when shrinking.
    let taps = to_slice.scale().ceil().clamp(1.0, 8.0) as usize;
    let step = 1.0 / taps as f64;
    let norm = 1.0 / (taps * taps) as f32;
    let mut out = Vec::with_capacity(out_w * out_h);
    if to_slice.b == 0.0 && to_slice.c == 0.0 {
        // Unrotated (every detector view): a column's taps do not depend on the row, nor a
        // row's on the column, so each is placed once instead of once per pixel. The same
        // arithmetic as below, so the same numbers; it took a third off a detection natively
        // (docs/performance.md, "Resampling the views").
        let columns: Vec<Tap> = (0..out_w * taps)
            .map(|k| Tap::new(to_slice.a * tap_at(k, taps, step) + to_slice.tx, width))
            .collect();
        let rows: Vec<Tap> = (0..out_h * taps)
            .map(|k| Tap::new(to_slice.d * tap_at(k, taps, step) + to_slice.ty, height))
            .collect();
        for row in rows.chunks(taps) {
            for column in columns.chunks(taps) {
                let mut acc = 0.0f32;
                for &y in row {
                    for &x in column {
                        acc += bilinear(values, width, x, y, pad);
                    }
                }
                out.push(acc * norm);
            }
        }
        return out;
    }
    for v in 0..out_h {
        for u in 0..out_w {
            let mut acc = 0.0f32;
            for j in 0..taps {
                let vv = tap_at(v * taps + j, taps, step);
                for i in 0..taps {
                    let uu = tap_at(u * taps + i, taps, step);
                    let (x, y) = to_slice.apply(uu, vv);
                    acc += bilinear(values, width, Tap::new(x, width), Tap::new(y, height), pad);
                }
            }
            out.push(acc * norm);
        }
    }
    out
}

/// The output coordinate of tap `k` along an axis with `taps` taps per pixel: pixel `k / taps`,
/// tap `k % taps`.
fn tap_at(k: usize, taps: usize, step: f64) -> f64 {
    (k / taps) as f64 + ((k % taps) as f64 + 0.5) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_undoes_a_rotated_scaled_map() {
        let m = Affine::similarity(2.5, 0.3, (10.0, -4.0));
        let inv = m.inverse().unwrap();
        let (x, y) = m.apply(17.0, 33.0);
        let (u, v) = inv.apply(x, y);
        assert!((u - 17.0).abs() < 1e-9 && (v - 33.0).abs() < 1e-9);
        assert!((m.scale() - 2.5).abs() < 1e-12);
    }

    #[test]
    fn letterbox_centres_a_portrait_slice_and_pads_the_sides() {
        // 100 x 200 into 50 x 50: scale 4, the slice spans u in [12.5, 37.5).
        let m = Affine::letterbox(100, 200, 50);
        assert_eq!(m.apply(25.0, 0.0), (50.0, 0.0));
        assert_eq!(m.apply(12.5, 50.0), (0.0, 200.0));
        let values = vec![1.0f32; 100 * 200];
        let out = warp(&values, 100, 200, &m, 50, 50, 0.0);
        assert_eq!(out[25 * 50 + 5], 0.0, "left padding");
        assert_eq!(out[25 * 50 + 25], 1.0, "inside");
        assert_eq!(out[25 * 50 + 45], 0.0, "right padding");
    }

    #[test]
    fn unrotated_views_take_the_fast_path_to_the_same_numbers() {
        // The general loop runs for any rotation, however small; an angle of 1e-300 moves no
        // coordinate, so both paths must give the same bits: letterboxed with padding (shrunk
        // 3.2x), a crop partly off the slice (enlarged), and one shrunk by a non-integer.
        let (w, h) = (123, 819);
        let values: Vec<f32> = (0..w * h)
            .map(|k| ((k * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let maps = [
            Affine::letterbox(w, h, 256),
            Affine::fit(-20.0, 700.0, 90.0, 840.0, 64),
            Affine::fit(3.3, 5.1, 118.9, 600.2, 100),
        ];
        for m in maps {
            let (origin, scale) = ((m.tx, m.ty), m.a);
            let turned = Affine::similarity(scale, 1e-300, origin);
            assert!(turned.b != 0.0 && turned.c != 0.0);
            let fast = warp(&values, w, h, &m, 64, 48, -1.0);
            let general = warp(&values, w, h, &turned, 64, 48, -1.0);
            assert_eq!(fast, general, "{m:?}");
            assert!(fast.contains(&-1.0) || m.tx > 0.0, "padding reached");
        }
    }

    #[test]
    fn shrinking_averages_the_footprint() {
        // A 1-pixel checkerboard shrunk 4x averages to 0.5 everywhere, not to aliased stripes.
        let values: Vec<f32> = (0..64 * 64)
            .map(|k| ((k % 64 + k / 64) % 2) as f32)
            .collect();
        let out = warp(&values, 64, 64, &Affine::letterbox(64, 64, 16), 16, 16, 0.0);
        for &o in &out[17..30] {
            assert!((o - 0.5).abs() < 0.07, "{o}");
        }
    }
}
