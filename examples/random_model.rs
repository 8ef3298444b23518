//! Write a seeded, untrained ResNet18 model file with a card that says so: for tests and
//! benchmarks that need a model of the right shape, never for classification.
//!
//! cargo run --example random_model -- OUT.onnx [SEED]

use endplate::model::card::ModelCard;
use endplate::model::file::{write_model, BatchNorm};
use endplate::model::resnet::Architecture;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: random_model OUT.onnx [SEED]")?;
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let arch = Architecture::resnet18(4);
    let bytes = write_model(
        &arch,
        &arch.random_weights(seed),
        &ModelCard::untrained("untrained-random", seed),
        BatchNorm::Fold,
    )?;
    endplate::files::write_atomic(std::path::Path::new(&out), &bytes)?;
    eprintln!("wrote {out} ({} bytes, seed {seed})", bytes.len());
    Ok(())
}
