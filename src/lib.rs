//! endplate: classify lumbar vertebral endplate lesions (normal, wavy/irregular, notched,
//! Schmorl's node) on sagittal T2 MRI, after Bassani et al. 2023.
//!
//! The library holds everything the native binary, the trainer and the browser share: decoding,
//! the disc ROI, the model file and its card, inference and calibration. It knows nothing of the
//! command line or the browser.
//!
//! The modules are the stages of the pipeline, and a stage uses only the stages before it, so
//! no module imports another in a loop:
//!
//! 0. shared vocabulary at the root: [`class`], [`error`], [`files`] (native only)
//! 1. [`image`]: bytes to a slice at native depth
//! 2. [`study`]: many DICOM files to series, slice order and the proposed mid-sagittal T2 slice
//! 3. [`disc`]: a slice and four corners to the network's input
//! 4. [`manifest`] (rows of discs to their ROIs) and [`phantom`] (synthetic slices with known
//!    discs), both on top of `image` and `disc`
//! 5. [`model`]: the network, its file and card, inference and calibration
//! 6. [`eval`]: Table 3 metrics, charts and the report folder
//! 7. [`adapt`]: a model's last layer refitted to one's own labelled discs, with its held-out
//!    check (the CLI's `adapt` and the page's Adapt share it)
//! 8. [`train`] (feature `train`, native only): the trainer and the pieces only it uses
//! 9. `web` (wasm only): the browser API over all of the above
//!
//! The CLI (`src/bin/endplate/`) sits on top, one file per command family.

pub mod adapt;
pub mod class;
pub mod disc;
pub mod error;
pub mod eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
pub mod image;
pub mod manifest;
pub mod model;
pub mod phantom;
pub mod study;
#[cfg(all(feature = "train", not(target_arch = "wasm32")))]
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use self::image::slice::Slice;
pub use class::{Class, Label, Level};
pub use disc::geometry::Point;
pub use disc::roi::{Roi, RoiParams};
pub use error::{Error, Result};
pub use model::inference::{Classifier, Prediction};

/// The crate version, written into every model card.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
