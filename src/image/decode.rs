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
        Some(Format::Jpeg) => {
            check_jpeg_complete(bytes, name)?;
            decode_raster(bytes, name, ::image::ImageFormat::Jpeg)
        }
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

/// The JPEG decoder fills a truncated scan with gray and reports success; a cut-off download
/// would then look like a real slice. Refuse a JPEG whose image data has no end-of-image marker:
/// inside entropy-coded data every 0xFF is followed by 0x00 or a restart marker, so the last
/// start-of-scan is the main image's, and an `FF D9` after it can only be the real end. (An
/// EXIF thumbnail carries its own SOS and EOI early in the file: the first ones prove nothing.)
fn check_jpeg_complete(bytes: &[u8], name: &str) -> Result<()> {
    let last = |m: [u8; 2]| bytes.windows(2).rposition(|w| w == m);
    let complete =
        matches!((last([0xFF, 0xDA]), last([0xFF, 0xD9])), (Some(sos), Some(eoi)) if eoi > sos);
    if complete {
        Ok(())
    } else {
        Err(Error::image(
            name,
            format!(
                "the JPEG is truncated ({} bytes, no end-of-image marker after the image data); \
                 the file was cut off in copying or download: export or copy it again",
                bytes.len()
            ),
        ))
    }
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

/// A DICOM attribute of exactly `N` finite numbers (PixelSpacing, ImageOrientationPatient,
/// ImagePositionPatient), `None` when it is absent, unreadable or of another length: the
/// decoder and the study reader (`study::header`) read these the same way.
pub fn dicom_floats<const N: usize>(
    obj: &dicom_object::InMemDicomObject,
    tag: dicom_core::Tag,
) -> Option<[f64; N]> {
    let v: [f64; N] = obj
        .element(tag)
        .ok()?
        .to_multi_float64()
        .ok()?
        .try_into()
        .ok()?;
    v.iter().all(|x| x.is_finite()).then_some(v)
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
    // Only grayscale is read: PALETTE COLOR stores indices into a colour table, and reading them
    // as gray gives a plausible-looking but meaningless slice.
    let photometric = obj
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string());
    if let Some(p) = photometric.filter(|p| p != "MONOCHROME1" && p != "MONOCHROME2") {
        return Err(Error::image(
            name,
            format!(
                "photometric interpretation {p}: only grayscale (MONOCHROME1/2) MRI is supported; \
                 export the series as grayscale DICOM (PALETTE COLOR and RGB hold colour, not \
                 MR signal)"
            ),
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
    // dicom-pixeldata asserts on impossible bit depths and indexes by Rows x Columns: check both
    // against what the header and the pixel data can hold before handing the frame over.
    let depth = |tag, field: &str| -> Result<u16> {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_int::<u16>().ok())
            .ok_or_else(|| Error::image(name, format!("DICOM attribute {field} is missing")))
    };
    let allocated = depth(tags::BITS_ALLOCATED, "Bits Allocated (0028,0100)")?;
    let stored = depth(tags::BITS_STORED, "Bits Stored (0028,0101)")?;
    if !matches!(allocated, 8 | 16 | 32) || stored == 0 || stored > allocated {
        return Err(Error::image(
            name,
            format!(
                "{stored} bits stored in {allocated} allocated: the header is corrupt \
                 (8, 16 or 32 bits allocated, 1 to that many stored)"
            ),
        ));
    }
    let fragments = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments());
    let fragment = || {
        fragments
            .and_then(|f| f.get(frame as usize))
            .map(|f| f.as_slice())
    };
    // A JPEG frame may span several fragments: check its header only where fragment and frame
    // correspond (one fragment per frame, or a single frame's first fragment).
    let one_per_frame = fragments.is_some_and(|f| f.len() == frames as usize || frames == 1);
    if is_jpeg_syntax(&ts) && one_per_frame {
        check_jpeg_frame(fragment(), rows, cols, allocated)
            .map_err(|why| Error::image(name, format!("corrupt JPEG pixel data: {why}")))?;
    }
    if ts == RLE_LOSSLESS {
        check_rle(fragment(), rows, cols, allocated)
            .map_err(|why| Error::image(name, format!("corrupt RLE pixel data: {why}")))?;
    }
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

    let spacing_mm = dicom_floats::<2>(&obj, tags::PIXEL_SPACING).map(|[r, c]| (r, c));
    let orientation = dicom_floats::<6>(&obj, tags::IMAGE_ORIENTATION_PATIENT);
    let mut slice = Slice::new(cols as usize, rows as usize, pixels, bits)
        .map_err(|e| Error::image(name, e))?;
    slice.window = window;
    slice.spacing_mm = spacing_mm;
    slice.orientation = orientation;
    Ok(slice)
}

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// dicom-rs's RLE decoder indexes the fragment and the decoded segments without checking them
/// (a cut or forged file panics it), so check the header and every segment's PackBits stream
/// before handing the frame over: at most 15 segments, offsets inside the fragment and in order,
/// and each segment long enough for one byte plane of the frame.
fn check_rle(
    fragment: Option<&[u8]>,
    rows: u32,
    cols: u32,
    bits_allocated: u16,
) -> std::result::Result<(), String> {
    let fragment = fragment.ok_or("the frame has no fragment")?;
    if fragment.len() < 64 {
        return Err(format!(
            "a {}-byte fragment has no 64-byte header",
            fragment.len()
        ));
    }
    let word = |i: usize| u32::from_le_bytes(fragment[4 * i..4 * i + 4].try_into().unwrap());
    let segments = word(0) as usize;
    let needed = match bits_allocated {
        8 => 1,
        16 => 2,
        b => return Err(format!("{b} bits allocated (8 or 16 expected)")),
    };
    if !(needed..=15).contains(&segments) {
        return Err(format!("{segments} segments, {needed} expected"));
    }
    let plane = rows as usize * cols as usize;
    for i in 0..segments {
        let start = word(i + 1) as usize;
        let end = if i + 1 < segments {
            word(i + 2) as usize
        } else {
            fragment.len()
        };
        if start < 64 || start > end || end > fragment.len() {
            return Err(format!("segment {i} lies outside the fragment"));
        }
        if i < needed && packbits_len(&fragment[start..end]) < plane {
            return Err(format!(
                "segment {i} holds fewer than the {plane} bytes of a frame"
            ));
        }
    }
    Ok(())
}

/// The number of bytes a PackBits stream decodes to, reading no further than its end.
fn packbits_len(segment: &[u8]) -> usize {
    let (mut at, mut out) = (0, 0);
    while at < segment.len() {
        let h = segment[at] as i8;
        at += 1;
        if h >= 0 {
            let n = (h as usize + 1).min(segment.len() - at);
            at += n;
            out += n;
        } else if h != -128 {
            if at >= segment.len() {
                break;
            }
            at += 1;
            out += (1 - h as isize) as usize;
        }
    }
    out
}

/// JPEG baseline, extended, lossless (all of 1.2.840.10008.1.2.4.5x-7x).
fn is_jpeg_syntax(ts: &str) -> bool {
    ts.strip_prefix("1.2.840.10008.1.2.4.")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (50..=70).contains(&n))
}

/// The JPEG frame's own size and precision must be the header's: the decoder copies it into a
/// buffer sized by Rows x Columns and indexes it without checking.
fn check_jpeg_frame(
    fragment: Option<&[u8]>,
    rows: u32,
    cols: u32,
    allocated: u16,
) -> std::result::Result<(), String> {
    let f = fragment.ok_or("the frame has no fragment")?;
    let mut at = 2;
    if !f.starts_with(&[0xFF, 0xD8]) {
        return Err("the fragment does not start a JPEG stream".into());
    }
    while at + 4 <= f.len() {
        if f[at] != 0xFF {
            return Err(format!("no JPEG marker at byte {at}"));
        }
        let marker = f[at + 1];
        let len = u16::from_be_bytes([f[at + 2], f[at + 3]]) as usize;
        let sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if sof {
            let h = f.get(at + 4..at + 9).ok_or("a cut frame header")?;
            let (precision, height, width) = (
                h[0] as u16,
                u16::from_be_bytes([h[1], h[2]]) as u32,
                u16::from_be_bytes([h[3], h[4]]) as u32,
            );
            if (height, width) != (rows, cols) {
                return Err(format!(
                    "the JPEG frame is {width}x{height}, the header says {cols}x{rows}"
                ));
            }
            if precision == 0 || precision > allocated || (allocated > 8) != (precision > 8) {
                return Err(format!(
                    "{precision}-bit JPEG samples in {allocated} bits allocated"
                ));
            }
            return Ok(());
        }
        at += 2 + len;
    }
    Err("no JPEG frame header".into())
}
