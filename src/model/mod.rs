//! Stage 4, model: the network and everything about its file. Owns the ResNet18 description
//! ([`resnet`]), the self-describing ONNX file ([`file`], built from the protobuf pieces in
//! `onnx`, made smaller by [`storage`]) with its [`card`], inference with tract and the Platt
//! calibration, the last layer's refit ([`adapt`], [`last_layer`]), and the [`evidence`] maps that show where the network looked. Uses `disc` (the ROI
//! it takes as input, the preprocessing the card records),
//! `image` and the shared vocabulary; never evaluation or training, which build on it.
//!
//! Inside the stage the card states the contract (input and output names, input size), so the
//! file writer, its readers and inference all take it from there and the card needs none of them.

pub mod adapt;
pub mod calibration;
pub mod card;
pub mod corner_network;
pub mod detector;
pub mod detector_net;
pub mod evidence;
pub mod file;
pub mod inference;
pub mod last_layer;
mod onnx;
pub mod orientation;
pub mod resnet;
pub mod storage;
#[cfg(any(target_arch = "wasm32", test))]
mod wasm_kernel;
