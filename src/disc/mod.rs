//! Stage 2, disc: from a slice and four corner clicks to the network's input. Owns the disc's
//! frame (which corners make which endplate, its axis and extent) and the ROI that SPEC.md fixes
//! (margins, resampling, padding, normalisation; [`roi::RoiParams`] holds every parameter).
//! Uses `image` and the shared vocabulary; knows nothing of models, so the page, the CLI, the
//! trainer and evaluation all cut discs the same way.

pub mod detection;
pub mod geometry;
pub mod roi;
