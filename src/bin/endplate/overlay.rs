//! Overlays of a detector's work on a slice, for `evaluate-detector --overlays`: a picture of
//! every slice shows in seconds what a table of corner errors hides (a chain one level off, a
//! corner on an osteophyte).

use endplate::eval::detection::SliceOutcome;
use endplate::image::contrast::Stretch;
use endplate::{Error, Result, Slice};
use std::path::Path;

/// Truth blue; a detection at the right level green, at a wrong level orange; a false disc red.
const TRUTH: [u8; 3] = [60, 140, 255];
const RIGHT: [u8; 3] = [40, 220, 60];
const WRONG: [u8; 3] = [255, 150, 0];
const FALSE: [u8; 3] = [255, 30, 30];

struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn put(&mut self, x: f64, y: f64, c: [u8; 3]) {
        if x >= 0.0 && y >= 0.0 && (x as usize) < self.w && (y as usize) < self.h {
            let k = 3 * (y as usize * self.w + x as usize);
            self.rgb[k..k + 3].copy_from_slice(&c);
        }
    }

    fn line(&mut self, a: [f64; 2], b: [f64; 2], c: [u8; 3]) {
        let n = (b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil().max(1.0) as usize;
        for i in 0..=n {
            let t = i as f64 / n as f64;
            self.put(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), c);
        }
    }

    /// The two endplates and a small square on each corner.
    fn disc(&mut self, k: &[[f64; 2]; 4], c: [u8; 3]) {
        self.line(k[0], k[1], c);
        self.line(k[2], k[3], c);
        for p in k {
            for d in -2..=2 {
                let d = d as f64;
                self.put(p[0] + d, p[1] - 2.0, c);
                self.put(p[0] + d, p[1] + 2.0, c);
                self.put(p[0] - 2.0, p[1] + d, c);
                self.put(p[0] + 2.0, p[1] + d, c);
            }
        }
    }
}

/// Write `dir/<image name>.png`: the slice (1 %/99 % stretch) with the outcome drawn on it.
pub fn write(dir: &Path, slice: &Slice, outcome: &SliceOutcome) -> Result<()> {
    let s = Stretch::of(slice, 0.01, 0.99);
    let mut canvas = Canvas {
        w: slice.width,
        h: slice.height,
        rgb: slice
            .pixels
            .iter()
            .flat_map(|&v| [(s.apply(v) * 255.0) as u8; 3])
            .collect(),
    };
    for d in &outcome.discs {
        canvas.disc(&d.truth, TRUTH);
        if let Some(k) = &d.detected {
            canvas.disc(k, if d.right_level() { RIGHT } else { WRONG });
        }
    }
    for (_, k) in &outcome.false_detections {
        canvas.disc(k, FALSE);
    }
    let name = Path::new(&outcome.image)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "slice".into());
    let img = image::RgbImage::from_raw(slice.width as u32, slice.height as u32, canvas.rgb)
        .expect("size matches");
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("encoding PNG: {e}")))?;
    endplate::files::write_atomic(&dir.join(format!("{name}.png")), &png)
}
