//! One error type for the whole library, so the CLI, the trainer and the wasm API can all report
//! what went wrong, where, and what would be accepted instead — and never panic on bad input.

use std::fmt;

/// Everything the library can refuse. Messages are written for a user reading a terminal or the
/// page: they name the input at fault and, where possible, what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image that could not be decoded (corrupt, truncated, unsupported, too large).
    #[error("cannot read image {source_name}: {reason}")]
    Image { source_name: String, reason: String },

    /// Corners that cannot define a disc.
    #[error("invalid corners: {0}")]
    Corners(String),

    /// A model file that is not a usable endplate model.
    #[error("invalid model {source_name}: {reason}")]
    Model { source_name: String, reason: String },

    /// A manifest row or field that cannot be used.
    #[error("{file}, row {row}, field `{field}`: {reason}")]
    Manifest {
        file: String,
        row: usize,
        field: String,
        reason: String,
    },

    /// A value that is not one of the accepted choices (class label, level, option).
    #[error("unknown {what} `{value}`: expected one of {expected}")]
    Unknown {
        what: &'static str,
        value: String,
        expected: String,
    },

    /// A failure while running the network (should not happen with a validated model).
    #[error("inference failed: {0}")]
    Inference(String),

    /// Calibration or metric input that makes no sense (empty, mismatched lengths, ...).
    #[error("{0}")]
    Invalid(String),

    /// A file system failure, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn image(source_name: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Image {
            source_name: source_name.to_string(),
            reason: reason.to_string(),
        }
    }
    pub fn model(source_name: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Model {
            source_name: source_name.to_string(),
            reason: reason.to_string(),
        }
    }
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
