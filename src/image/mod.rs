//! Stage 1, image: from the bytes of a file to a [`slice::Slice`] at its native depth, and the
//! slice-wide contrast stretch the ROI starts from. Owns decoding (DICOM, PNG, JPEG), the slice
//! type and the stretch. Uses only the shared vocabulary (`class`, `error`): nothing here knows
//! about discs or models, so the page's viewer and every later stage share one decoder.

pub mod contrast;
pub mod decode;
pub mod orientation;
pub mod slice;
pub mod warp;
