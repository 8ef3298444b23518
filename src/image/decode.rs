//! Decoding PNG, JPEG and DICOM bytes into a [`Slice`] at native depth, in pure Rust so the same
//! code runs in the browser. Limits guard against decompression bombs before anything large is
//! allocated.

use super::slice::{Slice, Window};
use crate::error::{Error, Result};
use std::io::Cursor;

/// Largest accepted side in pixels. Sagittal MRI is at most a few thousand pixels wide; this
/// refuses forged headers long before the decoder allocates.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted number of pixels in one frame (64 MPixel).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// What kind of file the bytes hold, judged by content, never by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Dicom,
}

/// Sniff the format from the first bytes. DICOM files normally have a 128-byte preamble and
/// `DICM`; files without a preamble start with the file meta group (0002,xxxx).
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.len() >= 132 && &bytes[128..132] == b"DICM"
        || bytes.starts_with(b"DICM")
        || bytes.starts_with(&[0x02, 0x00])
    {
        Some(Format::Dicom)
    } else {
        None
    }
}

/// Options for [`decode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Frame of a multi-frame DICOM (0-based); the middle frame when `None`.
    pub frame: Option<u32>,
}

/// Decode PNG (8/16-bit, gray or colour), JPEG or DICOM into a single-channel slice.
/// `name` only labels errors (a file name, or "dropped file" in the page).
pub fn decode(bytes: &[u8], name: &str, options: DecodeOptions) -> Result<Slice> {
    match sniff(bytes) {
        Some(Format::Png) => decode_raster(bytes, name, ::image::ImageFormat::Png),
        Some(Format::Jpeg) => decode_raster(bytes, name, ::image::ImageFormat::Jpeg),
        Some(Format::Dicom) => decode_dicom(bytes, name, options.frame),
        None => Err(Error::image(
            name,
            format!(
                "not a PNG, JPEG or DICOM file (it starts with {:02x?}); \
                 export the slice as PNG/JPEG or DICOM",
                &bytes[..bytes.len().min(8)]
            ),
        )),
    }
}

/// Read a file from disk and decode it.
#[cfg(not(target_arch = "wasm32"))]
pub fn decode_file(path: &std::path::Path, options: DecodeOptions) -> Result<Slice> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, &path.display().to_string(), options)
}

fn decode_raster(bytes: &[u8], name: &str, format: ::image::ImageFormat) -> Result<Slice> {
    let mut reader = ::image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = ::image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| Error::image(name, e))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    use ::image::ColorType::*;
    let (pixels, bits): (Vec<f32>, u16) = match img.color() {
        L16 | La16 | Rgb16 | Rgba16 => (
            img.into_luma16()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            16,
        ),
        Rgb32F | Rgba32F => {
            return Err(Error::image(
                name,
                "floating-point images are not supported; use 8/16-bit",
            ))
        }
        _ => (
            img.into_luma8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            8,
        ),
    };
    Slice::new(width, height, pixels, bits)
}

fn decode_dicom(bytes: &[u8], name: &str, frame: Option<u32>) -> Result<Slice> {
    use dicom_dictionary_std::tags;
    use dicom_object::file::ReadPreamble;
    use dicom_pixeldata::{ConvertOptions, PixelDecoder, VoiLutOption};

    let obj = dicom_object::OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(Cursor::new(bytes))
        .map_err(|e| Error::image(name, format!("not a readable DICOM file: {e}")))?;

    let int = |tag, field: &str| -> Result<u32> {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .ok_or_else(|| Error::image(name, format!("DICOM attribute {field} is missing")))
    };
    let rows = int(tags::ROWS, "Rows (0028,0010)")?;
    let cols = int(tags::COLUMNS, "Columns (0028,0011)")?;
    let frames = obj
        .element(tags::NUMBER_OF_FRAMES)
        .ok()
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    if rows == 0
        || cols == 0
        || rows > MAX_SIDE
        || cols > MAX_SIDE
        || rows as u64 * cols as u64 > MAX_PIXELS
    {
        return Err(Error::image(
            name,
            format!(
                "{cols}x{rows} pixels is outside the accepted size (at most {MAX_SIDE} a side)"
            ),
        ));
    }
    let samples = obj
        .element(tags::SAMPLES_PER_PIXEL)
        .ok()
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(1);
    if samples != 1 {
        return Err(Error::image(
            name,
            format!("{samples} samples per pixel: only grayscale (MONOCHROME1/2) MRI is supported"),
        ));
    }
    let frame = frame.unwrap_or(frames / 2);
    if frame >= frames {
        return Err(Error::image(
            name,
            format!("frame {frame} asked, the file has {frames} (0-based)"),
        ));
    }

    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let decoded = obj.decode_pixel_data_frame(frame).map_err(|e| {
        Error::image(
            name,
            format!(
                "cannot decode pixel data in transfer syntax {ts} ({e}); supported: explicit/implicit \
                 VR little endian, explicit big endian, deflate, JPEG baseline/extended/lossless, RLE. \
                 Convert with e.g. `gdcmconv --raw`"
            ),
        )
    })?;
    let options = ConvertOptions::new().with_voi_lut(VoiLutOption::Identity);
    let mut pixels: Vec<f32> = decoded
        .to_vec_frame_with_options(0, &options)
        .map_err(|e| Error::image(name, format!("cannot convert pixel data: {e}")))?;
    let bits = decoded.bits_stored();

    let rescale = decoded.rescale().ok().and_then(|r| r.first().copied());
    let (slope, intercept) = rescale
        .map(|r| (r.slope, r.intercept))
        .unwrap_or((1.0, 0.0));
    let mut window = decoded.window().ok().flatten().and_then(|w| {
        w.first().map(|w| Window {
            center: w.center,
            width: w.width,
        })
    });

    // MONOCHROME1 shows low values bright: mirror values (and the window) within the range the
    // stored bits can hold, so the slice always reads "high = bright" at its native scale.
    if decoded.photometric_interpretation().as_str().trim() == "MONOCHROME1" {
        let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
        let (lo, hi) = if signed {
            (
                -(2f64.powi(bits as i32 - 1)),
                2f64.powi(bits as i32 - 1) - 1.0,
            )
        } else {
            (0.0, 2f64.powi(bits as i32) - 1.0)
        };
        let sum = slope * lo + intercept + slope * hi + intercept;
        for p in &mut pixels {
            *p = (sum - *p as f64) as f32;
        }
        if let Some(w) = window.as_mut() {
            w.center = sum - w.center;
        }
    }

    let spacing_mm = obj.element(tags::PIXEL_SPACING).ok().and_then(|e| {
        let v = e.to_multi_float64().ok()?;
        (v.len() == 2).then(|| (v[0], v[1]))
    });
    let mut slice = Slice::new(cols as usize, rows as usize, pixels, bits)
        .map_err(|e| Error::image(name, e))?;
    slice.window = window;
    slice.spacing_mm = spacing_mm;
    Ok(slice)
}
