//! Stage 5, eval: how good a model is. Owns the paper's Table 3 with bootstrap intervals
//! ([`metrics`]), the lesion-vs-normal figures of binary truth ([`lesion`]), the ROC and reliability [`curves`], the SVG charts and the report folder that
//! `evaluate` and `train` write. Uses `model` and earlier stages and the shared vocabulary; the
//! trainer uses it, never the reverse.

pub mod curves;
pub mod detection;
pub mod labelled;
pub mod lesion;
pub mod metrics;
pub mod plot;
#[cfg(not(target_arch = "wasm32"))]
pub mod report;
