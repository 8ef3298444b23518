//! The native command line: one binary, one subcommand per task of SPEC.md. This file is the
//! clap tree and the dispatch; each command family has its own file, a thin layer over the
//! library that parses arguments, calls it and prints.

mod adapt;
mod classify;
mod common;
mod corner_network;
mod detect;
mod evaluate;
mod orientation;
mod overlay;
mod roi;
mod synth;
#[cfg(feature = "train")]
mod train;
#[cfg(feature = "train")]
mod train_detector;

use clap::{Parser, Subcommand};
use classify::ClassifyArgs;
use evaluate::EvaluateArgs;
use roi::RoiArgs;
use std::process::ExitCode;
use synth::SynthArgs;
#[cfg(feature = "train")]
use train::{PretrainArgs, TrainArgs};

#[derive(Parser)]
#[command(
    name = "endplate",
    version,
    about = "Classify lumbar endplate lesions on sagittal T2 MRI (normal, wavy/irregular, notched, Schmorl's node)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the ROI of one disc as the model sees it (128x128 gray PNG)
    Roi(RoiArgs),
    /// Find the discs of a slice: levels, corners, scores
    Detect(detect::DetectArgs),
    /// Measure a detector on slices with known corners and levels
    EvaluateDetector(detect::EvaluateDetectorArgs),
    /// Teach a detector file which way up a slice is stored (slices stored upside down are then
    /// detected upright and their levels counted from the right end)
    FitOrientation(orientation::FitOrientationArgs),
    /// Let a second detector's network place the corners of a detector file's closer views,
    /// while the file's own network keeps finding the discs and naming their levels
    JoinCornerNetwork(corner_network::JoinCornerNetworkArgs),
    /// Train the disc detector on phantoms and real slices with corners
    #[cfg(feature = "train")]
    TrainDetector(train_detector::TrainDetectorArgs),
    /// Classify one disc (--image and --corners), every lumbar disc of a slice (--image alone: the detector finds them) or every row of a manifest
    Classify(ClassifyArgs),
    /// Refit a model's last layer to your labelled discs (a manifest), check it on held-out
    /// subjects, and write the adapted model
    Adapt(adapt::AdaptArgs),
    /// Make a phantom data set: synthetic sagittal T2 slices with known lesions and corners
    Synth(SynthArgs),
    /// Fine-tune ResNet18 on a labelled manifest (the paper's protocol); writes the model file
    #[cfg(feature = "train")]
    Train(TrainArgs),
    /// The paper's Table 3 for a model on a labelled manifest, with bootstrap intervals
    Evaluate(EvaluateArgs),
    /// Pretrain a backbone without lesion labels (self-supervised: which way up is each disc
    /// region?), for `train --init`
    #[cfg(feature = "train")]
    Pretrain(PretrainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Roi(a) => roi::run(a),
        Command::Detect(a) => detect::run_detect(a),
        Command::EvaluateDetector(a) => detect::run_evaluate_detector(a),
        Command::FitOrientation(a) => orientation::run(a),
        Command::JoinCornerNetwork(a) => corner_network::run(a),
        #[cfg(feature = "train")]
        Command::TrainDetector(a) => train_detector::run_train_detector(a),
        Command::Classify(a) => classify::run(a),
        Command::Adapt(a) => adapt::run(a),
        Command::Synth(a) => synth::run(a),
        #[cfg(feature = "train")]
        Command::Train(a) => train::run_train(a),
        #[cfg(feature = "train")]
        Command::Pretrain(a) => train::run_pretrain(a),
        Command::Evaluate(a) => evaluate::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
