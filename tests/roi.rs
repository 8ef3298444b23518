//! The disc ROI of SPEC.md: order of the corners, rotation, a hand-computed case, degenerate
//! corners.

mod common;

use endplate::{Error, Point, Roi, RoiParams, Slice};
use proptest::prelude::*;

fn max_abs_diff(a: &Roi, b: &Roi) -> f32 {
    a.pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn mean_abs_diff(a: &Roi, b: &Roi) -> f32 {
    a.pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| (x - y).abs())
        .sum::<f32>()
        / a.pixels.len() as f32
}

/// A smooth, textured test pattern, zero outside a disc of radius 110 around (128, 128) so that
/// rotating it about that centre keeps the whole histogram inside the 256x256 slice.
fn pattern(x: f64, y: f64) -> f64 {
    let (dx, dy) = (x - 128.0, y - 128.0);
    let r = (dx * dx + dy * dy).sqrt();
    if r > 110.0 {
        return 0.0;
    }
    let fade = ((110.0 - r) / 10.0).min(1.0);
    let v = 1000.0
        + 400.0 * (dx / 9.0).sin() * (dy / 13.0).cos()
        + 600.0 * (-((dx - 10.0).powi(2) + (dy + 5.0).powi(2)) / 300.0).exp()
        + 3.0 * dx;
    v * fade
}

fn rotate(p: Point, c: Point, angle: f64) -> Point {
    let (s, co) = angle.sin_cos();
    let (dx, dy) = (p.x - c.x, p.y - c.y);
    Point::new(c.x + co * dx - s * dy, c.y + s * dx + co * dy)
}

/// A disc centred at `c`, endplate width `w`, height `h`, tilted by `tilt` radians, with a
/// slight wedge so the two endplates are not parallel.
fn disc(c: Point, w: f64, h: f64, tilt: f64, wedge: f64) -> [Point; 4] {
    let raw = [
        Point::new(c.x - w / 2.0, c.y - h / 2.0 - wedge),
        Point::new(c.x + w / 2.0, c.y - h / 2.0 + wedge),
        Point::new(c.x - w / 2.0 * 0.97, c.y + h / 2.0),
        Point::new(c.x + w / 2.0 * 1.02, c.y + h / 2.0 + wedge),
    ];
    raw.map(|p| rotate(p, c, tilt))
}

const PERMUTATIONS: [[usize; 4]; 24] = {
    let mut out = [[0; 4]; 24];
    let mut n = 0;
    let mut a = 0;
    while a < 4 {
        let mut b = 0;
        while b < 4 {
            let mut c = 0;
            while c < 4 {
                if a != b && b != c && a != c && a + b + c >= 2 && a + b + c <= 6 {
                    let d = 6 - a - b - c;
                    if d == a || d == b || d == c {
                        c += 1;
                        continue;
                    }
                    out[n] = [a, b, c, d];
                    n += 1;
                }
                c += 1;
            }
            b += 1;
        }
        a += 1;
    }
    out
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_order_of_the_corners_gives_the_same_roi(
        cx in 90.0f64..166.0, cy in 90.0f64..166.0, w in 25.0f64..60.0, h in 6.0f64..18.0,
        tilt in -0.6f64..0.6, wedge in -2.0f64..2.0,
    ) {
        let slice = common::slice_from_fn(256, 256, pattern);
        let corners = disc(Point::new(cx, cy), w, h, tilt, wedge);
        let p = RoiParams::default();
        let first = Roi::extract(&slice, &corners, &p).unwrap();
        for perm in PERMUTATIONS {
            let c = perm.map(|i| corners[i]);
            let roi = Roi::extract(&slice, &c, &p).unwrap();
            prop_assert!(max_abs_diff(&first, &roi) < 1e-5, "order {:?}", perm);
        }
    }

    #[test]
    fn rotating_slice_and_corners_together_gives_the_same_roi(
        angle in -1.0f64..1.0, tilt in -0.4f64..0.4, w in 30.0f64..50.0, h in 8.0f64..15.0,
        ox in -15.0f64..15.0, oy in -15.0f64..15.0,
    ) {
        let centre = Point::new(128.0, 128.0);
        let slice = common::slice_from_fn(256, 256, pattern);
        // The rotated slice samples the same continuous pattern, rotated about the centre.
        let rotated = common::slice_from_fn(256, 256, |x, y| {
            let q = rotate(Point::new(x, y), centre, -angle);
            pattern(q.x, q.y)
        });
        let corners = disc(Point::new(128.0 + ox, 128.0 + oy), w, h, tilt, 1.0);
        let turned = corners.map(|p| rotate(p, centre, angle));
        let p = RoiParams::default();
        let a = Roi::extract(&slice, &corners, &p).unwrap();
        let b = Roi::extract(&rotated, &turned, &p).unwrap();
        // Interpolation error only: resampling the pattern on two different grids.
        prop_assert!(mean_abs_diff(&a, &b) < 0.01, "mean diff {}", mean_abs_diff(&a, &b));
        prop_assert!(max_abs_diff(&a, &b) < 0.12, "max diff {}", max_abs_diff(&a, &b));
    }
}

#[test]
fn a_horizontal_ramp_gives_the_roi_computed_by_hand() {
    // 200x100 slice, pixel column i holds value i.
    let px: Vec<f32> = (0..100).flat_map(|_| (0..200).map(|i| i as f32)).collect();
    let slice = Slice::new(200, 100, px, 8).unwrap();
    let corners = [
        Point::new(140.0, 56.0),
        Point::new(60.0, 40.0),
        Point::new(140.0, 40.0),
        Point::new(60.0, 56.0),
    ];
    let roi = Roi::extract(&slice, &corners, &RoiParams::default()).unwrap();
    // stretchlim over 20000 values: low = 2 (first value past 1 %), high = 197 (reaches 99 %).
    // Rectangle: width 2 * (40 + 0.25 * 80) = 120, height 2 * (8 + 0.3 * 0.75 * 80) = 52.
    // Long side 120 -> 128 px; height -> round(52 * 128 / 120) = 55 rows, centred from row 36.
    for b in 0..128 {
        for a in 0..128 {
            let got = roi.pixels[b * 128 + a];
            if !(36..91).contains(&b) {
                assert_eq!(got, 0.5, "padding at ({a}, {b})");
                continue;
            }
            let x = 40.0 + (a as f64 + 0.5) * 120.0 / 128.0;
            let want = ((x - 0.5 - 2.0) / 195.0).clamp(0.0, 1.0);
            assert!(
                (got as f64 - want).abs() < 1e-5,
                "({a}, {b}): {got} vs {want}"
            );
        }
    }
    // And the tensor normalises the gray per channel with ImageNet statistics.
    let t = roi.to_tensor(&RoiParams::default());
    assert_eq!(t.len(), 3 * 128 * 128);
    assert!((t[0] - (0.5 - 0.485) / 0.229).abs() < 1e-6);
    assert!((t[2 * 128 * 128] - (0.5 - 0.406) / 0.225).abs() < 1e-6);
}

#[test]
fn shrinking_averages_the_area_instead_of_aliasing() {
    // A one-pixel checkerboard: any ROI shrunk well below the slice's resolution must come out
    // close to uniform mid-gray, where point sampling would show a moire of 0s and 1s.
    let px: Vec<f32> = (0..600)
        .flat_map(|y| (0..600).map(move |x| ((x + y) % 2) as f32 * 100.0))
        .collect();
    let slice = Slice::new(600, 600, px, 8).unwrap();
    let corners = [
        Point::new(100.0, 250.0),
        Point::new(500.0, 250.0),
        Point::new(100.0, 350.0),
        Point::new(500.0, 350.0),
    ];
    let roi = Roi::extract(&slice, &corners, &RoiParams::default()).unwrap();
    let content: Vec<f32> = roi.pixels.iter().copied().filter(|&v| v != 0.5).collect();
    assert!(!content.is_empty());
    let worst = content.iter().map(|v| (v - 0.5).abs()).fold(0.0, f32::max);
    assert!(worst < 0.1, "aliasing: a pixel {worst} away from mid-gray");
}

#[test]
fn degenerate_corners_are_errors_not_panics() {
    let slice = common::slice_from_fn(100, 100, |x, y| x + y);
    let p = RoiParams::default();
    let cases: Vec<(&str, [Point; 4])> = vec![
        ("coincident", [Point::new(50.0, 50.0); 4]),
        (
            "two coincident pairs",
            [
                Point::new(20.0, 50.0),
                Point::new(20.0, 50.0),
                Point::new(60.0, 50.0),
                Point::new(60.0, 50.0),
            ],
        ),
        (
            "collinear",
            [
                Point::new(10.0, 50.0),
                Point::new(30.0, 50.0),
                Point::new(50.0, 50.0),
                Point::new(70.0, 50.0),
            ],
        ),
        (
            "not finite",
            [
                Point::new(f64::NAN, 50.0),
                Point::new(30.0, 50.0),
                Point::new(50.0, 60.0),
                Point::new(70.0, 60.0),
            ],
        ),
        (
            "infinite",
            [
                Point::new(f64::INFINITY, 50.0),
                Point::new(30.0, 50.0),
                Point::new(50.0, 60.0),
                Point::new(70.0, 60.0),
            ],
        ),
        (
            "outside",
            [
                Point::new(-5.0, 40.0),
                Point::new(60.0, 40.0),
                Point::new(20.0, 60.0),
                Point::new(60.0, 60.0),
            ],
        ),
        (
            "far outside",
            [
                Point::new(1e9, 40.0),
                Point::new(60.0, 40.0),
                Point::new(20.0, 60.0),
                Point::new(60.0, 60.0),
            ],
        ),
    ];
    for (what, corners) in cases {
        match Roi::extract(&slice, &corners, &p) {
            Err(Error::Corners(msg)) => assert!(!msg.is_empty(), "{what}"),
            other => panic!("{what}: expected a corners error, got {other:?}"),
        }
    }
}

/// The card's moved copies (`preprocessing.moved_corners`): each is the ROI of the disc's corners
/// moved in its own frame, the same for any order of the clicks; a move that leaves no disc
/// gives the disc's own ROI; the network input holds the own ROI first, then the copies; a card
/// without the field reads as before and writes no such field.
#[test]
fn moved_copies_are_cut_in_the_discs_own_frame_whatever_the_click_order() {
    use endplate::disc::geometry::DiscFrame;
    use endplate::disc::roi::{network_input, MovedCorners};
    let slice = common::slice_from_fn(256, 256, pattern);
    let corners = disc(Point::new(128.0, 120.0), 44.0, 12.0, 0.3, 1.0);
    let width = DiscFrame::of(&corners).unwrap().width;
    let height = 12.0;
    // Third copy: the cranial corners moved down and the caudal ones up by half the height each,
    // so the endplates meet and no disc is left to cut.
    let (f, meet) = (0.03, 0.5 * height / (0.03 * width));
    let moves = vec![
        [0.5, -1.0, 1.2, 0.3, -0.7, 0.8, 0.1, -1.5],
        [-0.5, 1.0, -1.2, -0.3, 0.7, -0.8, -0.1, 1.5],
        [0.0, meet, 0.0, meet, 0.0, -meet, 0.0, -meet],
    ];
    let p = RoiParams {
        moved_corners: Some(MovedCorners {
            fraction: f,
            moves: moves.clone(),
        }),
        ..RoiParams::default()
    };
    let plain = RoiParams::default();
    let roi = Roi::extract(&slice, &corners, &p).unwrap();
    let own = Roi::extract(&slice, &corners, &plain).unwrap();
    assert_eq!(roi.pixels, own.pixels, "the disc's own ROI is unchanged");
    assert!(own.moved.is_empty());
    assert_eq!(roi.moved.len(), 3);
    let frame = DiscFrame::of(&corners).unwrap();
    for (k, unit) in moves.iter().enumerate().take(2) {
        let moved = frame.moved(unit, f);
        let expected = Roi::extract(&slice, &moved, &plain).unwrap();
        assert_eq!(roi.moved[k], expected.pixels, "copy {k}");
        let shift: f64 = corners
            .iter()
            .map(|c| {
                moved
                    .iter()
                    .map(|m| m.distance(*c))
                    .fold(f64::MAX, f64::min)
            })
            .sum::<f64>()
            / 4.0;
        assert!(
            shift > 0.3 && shift < 3.0 * f * width,
            "copy {k}: corners moved {shift:.2} px on a {width:.1} px disc"
        );
        assert!(
            max_abs_diff(
                &own,
                &Roi {
                    pixels: roi.moved[k].clone(),
                    ..own.clone()
                }
            ) > 0.01
        );
    }
    assert_eq!(
        roi.moved[2], own.pixels,
        "a move that leaves no disc keeps the own ROI"
    );
    for perm in PERMUTATIONS {
        let again = Roi::extract(&slice, &perm.map(|i| corners[i]), &p).unwrap();
        for (a, b) in again.moved.iter().zip(&roi.moved) {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(d < 1e-5, "order {perm:?}: copies differ by {d}");
        }
    }
    let input = network_input([&roi, &own], &p);
    let per = 3 * 128 * 128;
    assert_eq!(
        input.len(),
        5 * per,
        "4 views of the first disc, 1 of the second"
    );
    assert_eq!(input[..per], own.to_tensor(&plain)[..]);
    assert_eq!(p.views_per_disc(), 4);
    assert_eq!(plain.views_per_disc(), 1);

    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("moved_corners").is_none(), "{json}");
    let back: RoiParams = serde_json::from_value(json).unwrap();
    assert_eq!(back, plain);
    let with: RoiParams = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(with, p);
}
