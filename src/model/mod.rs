//! Stage 4, model: the network and everything about its file. Owns the ResNet18 description
//! ([`resnet`]), the self-describing ONNX file and its card, inference with tract and the Platt
//! calibration. Uses `disc` (the ROI it takes as input, the preprocessing the card records),
//! `image` and the shared vocabulary; never evaluation or training, which build on it.

pub mod calibration;
pub mod card;
pub mod file;
pub mod inference;
pub mod resnet;
