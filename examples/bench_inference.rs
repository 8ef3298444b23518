//! Inference benchmark (not a test): times our tract plan on a ResNet18 written by our writer,
//! for several thread counts and batch sizes, and leaves the model and the exact input tensors in
//! a folder so `bench/onnxruntime_bench.py` can time onnxruntime on the same bytes.
//!
//! cargo run --release --example bench_inference -- OUT_DIR [DISCS]

#[path = "common/bench_input.rs"]
mod bench_input;

use endplate::model::card::ModelCard;
use endplate::model::file::{write_model, BatchNorm};
use endplate::model::inference::set_threads;
use endplate::model::resnet::Architecture;
use endplate::Classifier;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "target/bench".into()));
    let discs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    std::fs::create_dir_all(&out)?;

    let arch = Architecture::resnet18(4);
    let bytes = write_model(
        &arch,
        &arch.random_weights(1),
        &ModelCard::untrained("bench", 1),
        BatchNorm::Fold,
    )?;
    std::fs::write(out.join("model.onnx"), &bytes)?;
    let per = 3 * 128 * 128;
    let input = bench_input::pseudo_random_input(discs);
    std::fs::write(
        out.join("input.f32"),
        input
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let model = Classifier::from_bytes("bench", &bytes)?;
    let mut rows = Vec::new();
    for threads in [1, cores] {
        set_threads(threads);
        for batch in [1, 8, 32] {
            // Warm up once, then time all discs in batches.
            model.logits(input[..batch.min(discs) * per].to_vec(), batch.min(discs))?;
            let t = Instant::now();
            let mut done = 0;
            while done < discs {
                let n = batch.min(discs - done);
                model.logits(input[done * per..(done + n) * per].to_vec(), n)?;
                done += n;
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / discs as f64;
            println!(
                "tract        threads={threads} batch={batch:<3} {ms:7.2} ms/disc  {:7.1} discs/s",
                1000.0 / ms
            );
            rows.push(serde_json::json!({"engine": "tract", "threads": threads, "batch": batch, "ms_per_disc": ms}));
        }
        if cores == 1 {
            break;
        }
    }
    std::fs::write(out.join("tract.json"), serde_json::to_string_pretty(&rows)?)?;
    Ok(())
}
