//! From four unordered corner clicks to the disc's own frame: which points form the two
//! endplates, the disc axis, its centre and its extent. Everything is derived from the geometry
//! alone so that any order of the clicks gives the same disc.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A point in slice pixel coordinates (x right, y down, origin at the top-left pixel's corner).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Point {
        Point { x, y }
    }
    fn sub(self, o: Point) -> Point {
        Point::new(self.x - o.x, self.y - o.y)
    }
    fn dot(self, o: Point) -> f64 {
        self.x * o.x + self.y * o.y
    }
    fn norm(self) -> f64 {
        self.dot(self).sqrt()
    }
    pub fn distance(self, o: Point) -> f64 {
        self.sub(o).norm()
    }
}

/// The mean of a disc's four corners.
pub fn centre(corners: &[Point; 4]) -> Point {
    Point::new(
        corners.iter().map(|p| p.x).sum::<f64>() / 4.0,
        corners.iter().map(|p| p.y).sum::<f64>() / 4.0,
    )
}

/// The disc in its own frame: `u` runs along the endplates, `v` across them pointing caudally
/// (towards larger image y), `(u, v)` a rotation of the image axes — never a mirror image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscFrame {
    pub center: Point,
    pub u: Point,
    pub v: Point,
    /// Mean endplate length (pixels).
    pub width: f64,
    /// Largest |projection| of a corner on `u` and on `v` from the centre (pixels).
    pub half_extent_u: f64,
    pub half_extent_v: f64,
    /// The cranial and caudal endplates, each as its two corners.
    pub endplates: [[Point; 2]; 2],
}

fn segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool {
    let orient =
        |p: Point, q: Point, r: Point| (q.x - p.x) * (r.y - p.y) - (q.y - p.y) * (r.x - p.x);
    let (o1, o2) = (orient(a, b, c), orient(a, b, d));
    let (o3, o4) = (orient(c, d, a), orient(c, d, b));
    o1 * o2 < 0.0 && o3 * o4 < 0.0
}

impl DiscFrame {
    /// Pair the four corners into the two endplates and build the frame.
    ///
    /// Of the three ways to split four points into two pairs, one gives the diagonals (they
    /// cross) and two give opposite sides of the quadrilateral. Endplates are the longer pair of
    /// opposite sides: a lumbar disc is always wider than it is high.
    pub fn from_corners(corners: &[Point; 4], image_size: (usize, usize)) -> Result<DiscFrame> {
        let (w, h) = (image_size.0 as f64, image_size.1 as f64);
        for (i, p) in corners.iter().enumerate() {
            if !p.x.is_finite() || !p.y.is_finite() {
                return Err(Error::Corners(format!(
                    "corner {} is not a finite number",
                    i + 1
                )));
            }
            if p.x < 0.0 || p.y < 0.0 || p.x > w || p.y > h {
                return Err(Error::Corners(format!(
                    "corner {} ({:.1}, {:.1}) lies outside the {}x{} slice",
                    i + 1,
                    p.x,
                    p.y,
                    image_size.0,
                    image_size.1
                )));
            }
        }
        Self::of(corners)
    }

    /// The frame of four corners wherever they lie (a detector's output, a training view's
    /// mapped truth): the pairing and checks of [`DiscFrame::from_corners`] without the slice
    /// bounds.
    pub fn of(corners: &[Point; 4]) -> Result<DiscFrame> {
        let [a, b, c, d] = *corners;
        let pairings = [((a, b), (c, d)), ((a, c), (b, d)), ((a, d), (b, c))];
        let sides: Vec<_> = pairings
            .into_iter()
            .filter(|((p, q), (r, s))| !segments_cross(*p, *q, *r, *s))
            .collect();
        let len = |(p, q): (Point, Point)| q.sub(p).norm();
        let (e1, e2) = sides
            .into_iter()
            .max_by(|x, y| {
                let (lx, ly) = (len(x.0) + len(x.1), len(y.0) + len(y.1));
                lx.total_cmp(&ly).then_with(|| {
                    // Exact tie (a square): prefer the more horizontal pair, a rule that still
                    // depends on geometry only.
                    let horiz = |s: &((Point, Point), (Point, Point))| {
                        let d = s.0 .1.sub(s.0 .0);
                        d.x.abs() - d.y.abs()
                    };
                    horiz(x).total_cmp(&horiz(y))
                })
            })
            .ok_or_else(|| Error::Corners("the four corners do not form a quadrilateral".into()))?;

        let (l1, l2) = (len(e1), len(e2));
        let width = 0.5 * (l1 + l2);
        let mut d1 = e1.1.sub(e1.0);
        let d2 = e2.1.sub(e2.0);
        if d1.dot(d2) < 0.0 {
            d1 = Point::new(-d1.x, -d1.y);
        }
        let dir = Point::new(
            d1.x / l1.max(f64::MIN_POSITIVE) + d2.x / l2.max(f64::MIN_POSITIVE),
            d1.y / l1.max(f64::MIN_POSITIVE) + d2.y / l2.max(f64::MIN_POSITIVE),
        );
        let dn = dir.norm();
        let min_side = 1.0;
        if l1 < min_side || l2 < min_side || dn.is_nan() || dn <= 1e-9 {
            return Err(Error::Corners(
                "corners coincide: each endplate needs two distinct corners at least a pixel apart"
                    .into(),
            ));
        }
        let axis = Point::new(dir.x / dn, dir.y / dn);
        // Normal pointing down the image (caudal); u completes a right-handed image frame.
        let mut v = Point::new(-axis.y, axis.x);
        if v.y < 0.0 || (v.y == 0.0 && v.x < 0.0) {
            v = Point::new(-v.x, -v.y);
        }
        let u = Point::new(v.y, -v.x);

        let center = centre(corners);
        let proj = |p: &Point, dir: Point| p.sub(center).dot(dir);
        let half_extent_u = corners.iter().map(|p| proj(p, u).abs()).fold(0.0, f64::max);
        let half_extent_v = corners.iter().map(|p| proj(p, v).abs()).fold(0.0, f64::max);
        // Height between the endplates: distance of the two endplate midpoints along v.
        let mid = |(p, q): (Point, Point)| Point::new(0.5 * (p.x + q.x), 0.5 * (p.y + q.y));
        let gap = mid(e2).sub(mid(e1)).dot(v).abs();
        if gap < 0.05 * width || gap < 1.0 {
            return Err(Error::Corners(format!(
                "the corners are (nearly) collinear: the two endplates are {gap:.1} px apart for a \
                 {width:.1} px wide disc; click the two corners of the upper vertebra's lower \
                 endplate and the two of the lower vertebra's upper endplate"
            )));
        }
        let (upper, lower) = if proj(&mid(e1), v) < proj(&mid(e2), v) {
            (e1, e2)
        } else {
            (e2, e1)
        };
        Ok(DiscFrame {
            center,
            u,
            v,
            width,
            half_extent_u,
            half_extent_v,
            endplates: [[upper.0, upper.1], [lower.0, lower.1]],
        })
    }

    /// The four corners in the disc's own order (the cranial endplate's, then the caudal one's,
    /// each along `u`), each moved by `unit` (`du1, dv1, .. du4, dv4`) times `fraction` of the
    /// width along `u` and `v`: a move the same for any order of the clicks and any rotation
    /// of the slice, so every reader cuts the same copy of a disc (`RoiParams::moved_corners`).
    pub fn moved(&self, unit: &[f64; 8], fraction: f64) -> [Point; 4] {
        let along = |p: &Point| p.sub(self.center).dot(self.u);
        let mut ordered = [Point::default(); 4];
        for (k, mut pair) in self.endplates.into_iter().enumerate() {
            pair.sort_by(|a, b| along(a).total_cmp(&along(b)));
            ordered[2 * k..2 * k + 2].copy_from_slice(&pair);
        }
        let scale = fraction * self.width;
        std::array::from_fn(|i| {
            let (du, dv) = (unit[2 * i] * scale, unit[2 * i + 1] * scale);
            Point::new(
                ordered[i].x + du * self.u.x + dv * self.v.x,
                ordered[i].y + du * self.u.y + dv * self.v.y,
            )
        })
    }
}
