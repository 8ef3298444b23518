//! endplate: classify lumbar vertebral endplate lesions (normal, wavy/irregular, notched,
//! Schmorl's node) on sagittal T2 MRI, after Bassani et al. 2023.
//!
//! The library holds everything the native binary, the trainer and the browser share: decoding,
//! the disc ROI, the model file and its card, inference and calibration. It knows nothing of the
//! command line or the browser.

pub mod augment;
pub mod calibration;
pub mod card;
pub mod class;
pub mod contrast;
pub mod decode;
pub mod error;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
pub mod geometry;
pub mod inference;
pub mod manifest;
pub mod metrics;
pub mod model_file;
pub mod phantom;
pub mod plateau;
pub mod plot;
#[cfg(not(target_arch = "wasm32"))]
pub mod report;
pub mod resnet;
pub mod roi;
pub mod sampler;
pub mod slice;
pub mod split;
#[cfg(all(feature = "train", not(target_arch = "wasm32")))]
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use class::{Class, Level};
pub use error::{Error, Result};
pub use geometry::Point;
pub use inference::{Classifier, Prediction};
pub use roi::{Roi, RoiParams};
pub use slice::Slice;

/// The crate version, written into every model card.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
