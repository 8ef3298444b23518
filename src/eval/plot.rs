//! Small, dependency-free SVG charts for the report folder. SVG rather than PNG because it is
//! text (diffable, tiny, crisp at any zoom) and opens in any browser with no plotting stack.

use std::fmt::Write;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed lines mark references (chance, the diagonal).
    pub dashed: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            dashed: false,
        }
    }

    pub fn reference(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            dashed: true,
            ..Series::new(name, points)
        }
    }
}

/// Colour-blind-safe (Okabe-Ito), in class order first.
const COLOURS: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#f0e442", "#000000",
];

const W: f64 = 480.0;
const H: f64 = 360.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        (LEFT + W - RIGHT) / 2.0,
        escape(title)
    )
}

/// Rounded tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// A line chart with axes, ticks and a legend. `x_range`/`y_range` fix an axis (e.g. 0..1 for
/// rates); otherwise it spans the data.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
) -> String {
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let span = |f: &dyn Fn(&(f64, f64)) -> f64| {
        let (lo, hi) = all()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo.is_finite() {
            if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5, hi + 0.5)
            }
        } else {
            (0.0, 1.0)
        }
    };
    let (x0, x1) = x_range.unwrap_or_else(|| span(&|p| p.0));
    let (y0, y1) = y_range.unwrap_or_else(|| span(&|p| p.1));
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
    let mut s = header(title);
    for t in ticks(x0, x1) {
        let x = px(t);
        let _ = writeln!(s, "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{TOP}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", H - BOTTOM, H - BOTTOM + 16.0, label(t));
    }
    for t in ticks(y0, y1) {
        let y = py(t);
        let _ = writeln!(s, "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", W - RIGHT, LEFT - 6.0, y + 4.0, label(t));
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#444\"/>",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 10.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (TOP + H - BOTTOM) / 2.0,
        escape(y_label)
    );
    for (i, ser) in series.iter().enumerate() {
        let colour = if ser.dashed {
            "#888"
        } else {
            COLOURS[i % COLOURS.len()]
        };
        let dash = if ser.dashed {
            " stroke-dasharray=\"5 4\""
        } else {
            ""
        };
        let path: Vec<String> = ser
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if path.len() == 1 {
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{colour}\"/>",
                path[0].split(',').next().unwrap_or("0"),
                path[0].split(',').nth(1).unwrap_or("0")
            );
        } else {
            let _ = writeln!(s, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"/>", path.join(" "));
        }
        let ly = TOP + 10.0 + 18.0 * i as f64;
        let lx = W - RIGHT + 12.0;
        let _ = writeln!(s, "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>", lx + 18.0, lx + 24.0, ly + 4.0, escape(&ser.name));
    }
    s.push_str("</svg>\n");
    s
}

/// A confusion matrix as a heat map: rows truth, columns prediction, cells shaded by the share
/// of their row (so rare classes read as clearly as common ones), with counts written in.
pub fn confusion_chart(title: &str, names: &[&str], counts: &[Vec<usize>]) -> String {
    let n = names.len();
    let cell = 60.0;
    let (ox, oy) = (110.0, 70.0);
    let w = ox + cell * n as f64 + 20.0;
    let h = oy + cell * n as f64 + 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{:.1}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n<text x=\"{:.1}\" y=\"40\" text-anchor=\"middle\">predicted</text>\n",
        w / 2.0,
        escape(title),
        ox + cell * n as f64 / 2.0
    );
    for (j, name) in names.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            ox + cell * (j as f64 + 0.5),
            oy - 8.0,
            escape(name)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ox - 8.0,
            oy + cell * (j as f64 + 0.5) + 4.0,
            escape(name)
        );
    }
    for (i, row) in counts.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (j, &c) in row.iter().enumerate() {
            let share = if total > 0 {
                c as f64 / total as f64
            } else {
                0.0
            };
            let shade = (255.0 - 200.0 * share) as u8;
            let text = if share > 0.55 { "white" } else { "black" };
            let (x, y) = (ox + cell * j as f64, oy + cell * i as f64);
            let _ = writeln!(s, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({shade},{shade},255)\" stroke=\"#888\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{text}\" font-size=\"14\">{c}</text>", x + cell / 2.0, y + cell / 2.0 + 5.0);
        }
    }
    let _ = writeln!(
        s,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">truth</text>",
        oy + cell * n as f64 / 2.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        let labels = |lo, hi| ticks(lo, hi).into_iter().map(label).collect::<Vec<_>>();
        assert_eq!(labels(0.0, 1.0), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert_eq!(labels(1.0, 30.0), ["5", "10", "15", "20", "25", "30"]);
        assert_eq!(labels(0.31, 0.38), ["0.32", "0.34", "0.36", "0.38"]);
    }

    #[test]
    fn chart_places_points_on_the_axes_it_draws() {
        let svg = line_chart(
            "t",
            "x",
            "y",
            &[Series::new("a & b", vec![(0.0, 0.0), (1.0, 1.0)])],
            Some((0.0, 1.0)),
            Some((0.0, 1.0)),
        );
        // (0,0) maps to the plot's lower-left corner, (1,1) to its upper right.
        let lower_left = format!("{LEFT:.1},{:.1}", H - BOTTOM);
        let upper_right = format!("{:.1},{TOP:.1}", W - RIGHT);
        assert!(
            svg.contains(&format!("points=\"{lower_left} {upper_right}\"")),
            "{svg}"
        );
        assert!(svg.contains("a &amp; b") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn confusion_cells_carry_their_counts() {
        let svg = confusion_chart("c", &["n", "s"], &[vec![9, 1], vec![0, 5]]);
        for n in ["9", "1", "0", "5"] {
            assert!(svg.contains(&format!(">{n}</text>")));
        }
        // A full row shades darkest.
        assert!(svg.contains("rgb(55,55,255)"));
    }
}
