//! A decoded slice: one channel of native-depth values plus what the viewer needs to display it.
//! Everything downstream (contrast stretch, ROI, phantoms, the page) works on this one type.

use serde::{Deserialize, Serialize};

/// A display window (DICOM Window Center/Width), kept so the page can open a DICOM the way the
/// scanner meant it to be seen. It never influences the ROI, which uses the 1 %/99 % stretch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

/// A single-channel image at its native value range (e.g. 0..=255, 0..=65535 or rescaled DICOM
/// values), row-major, `pixels[y * width + x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
    /// Bits per sample in the source (8 or 16 for PNG/JPEG; Bits Stored for DICOM).
    pub bits: u16,
    pub window: Option<Window>,
    /// Pixel spacing in mm (row spacing, column spacing) where the file says so.
    pub spacing_mm: Option<(f64, f64)>,
    /// DICOM ImageOrientationPatient (row, then column direction cosines) where the file says
    /// so; [`super::orientation::warning`] reads it.
    pub orientation: Option<[f64; 6]>,
}

impl Slice {
    /// A slice from raw values, checking that the buffer matches the size.
    pub fn new(width: usize, height: usize, pixels: Vec<f32>, bits: u16) -> crate::Result<Slice> {
        if width == 0 || height == 0 || pixels.len() != width * height {
            return Err(crate::Error::image(
                "<memory>",
                format!(
                    "{}x{} slice needs {} values, got {}",
                    width,
                    height,
                    width * height,
                    pixels.len()
                ),
            ));
        }
        Ok(Slice {
            width,
            height,
            pixels,
            bits,
            window: None,
            spacing_mm: None,
            orientation: None,
        })
    }

    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.pixels[y * self.width + x]
    }

    /// The slice turned top to bottom (rows in reverse order): a slice stored upside down, made
    /// upright. A point at height `y` (pixel centres at `j + 0.5`) moves to `height - y`.
    pub fn flipped_vertically(&self) -> Slice {
        let pixels = self
            .pixels
            .chunks_exact(self.width)
            .rev()
            .flatten()
            .copied()
            .collect();
        Slice {
            width: self.width,
            height: self.height,
            pixels,
            bits: self.bits,
            window: self.window,
            spacing_mm: self.spacing_mm,
            // Turned top to bottom: the column direction is reversed.
            orientation: self
                .orientation
                .map(|o| [o[0], o[1], o[2], -o[3], -o[4], -o[5]]),
        }
    }
}
