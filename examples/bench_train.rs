//! Training-throughput benchmark (not a test): images per second of one training step of our
//! burn ResNet18 at batch 32, 128x128, for the whole network and for layer4 + head only, with
//! SGD (as the reference figures) and with Adam (what `endplate train` uses). A step is
//! also split into forward, backward and optimizer time: that split is where burn's time goes.
//! `bench/train.sh` runs PyTorch on the same network, batch and threads in the same run.
//!
//! RAYON_NUM_THREADS=2 cargo run --release --features train --example bench_train -- [STEPS] [OUT.json]
//!
//! Built with `--features tch` it measures burn on LibTorch's CPU backend instead (the device
//! `endplate train` then uses; DEVELOPERS.md, "Training on LibTorch").

#[path = "common/bench_input.rs"]
mod bench_input;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use endplate::model::resnet::Architecture;
use endplate::train::network::ResNet18;
use std::time::Instant;

const ENGINE: &str = if cfg!(feature = "tch") {
    "burn-tch"
} else {
    "burn-flex"
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let out = args.next();
    let batch = 32;
    let device = endplate::train::device().autodiff();
    let arch = Architecture::resnet18(4);
    let input = bench_input::pseudo_random_input(batch);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 4).collect();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    let mut rows = Vec::new();
    for (what, open) in [("full", 5usize), ("layer4+fc", 1)] {
        for opt in ["sgd", "adam"] {
            let mut model = ResNet18::from_weights(&arch, &arch.random_weights(1), &device)?
                .with_trainable_stages(open);
            let mut optim: ModuleOptimizer = if opt == "sgd" {
                SgdConfig::new().init()
            } else {
                AdamConfig::new().init()
            };
            let (mut fwd, mut bwd, mut upd, mut total) = (vec![], vec![], vec![], vec![]);
            // One warm-up step, then the timed ones.
            for step in 0..=steps {
                let x = Tensor::<4>::from_data(
                    TensorData::new(input.clone(), [batch, 3, 128, 128]),
                    &device,
                );
                let y =
                    Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [batch]), &device);
                let t0 = Instant::now();
                let loss = loss_fn.forward(model.forward(x), y);
                // Forcing the loss value ends the (lazy) forward pass here.
                let _ = loss.clone().into_data();
                let t1 = Instant::now();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                let t2 = Instant::now();
                model = optim.step(1e-3, model, grads);
                // Reading one updated weight ends the step.
                let _ = model.fc.weight.val().into_data();
                let t3 = Instant::now();
                if step > 0 {
                    fwd.push((t1 - t0).as_secs_f64());
                    bwd.push((t2 - t1).as_secs_f64());
                    upd.push((t3 - t2).as_secs_f64());
                    total.push((t3 - t0).as_secs_f64());
                }
            }
            let t = median(total);
            let row = serde_json::json!({
                "engine": ENGINE, "trainable": what, "optimizer": opt, "batch": batch,
                "threads": threads, "images_per_second": batch as f64 / t,
                "ms": {"step": 1e3 * t, "forward": 1e3 * median(fwd), "backward": 1e3 * median(bwd), "optimizer": 1e3 * median(upd)},
            });
            eprintln!(
                "{ENGINE} {what:<9} {opt:<4}: {:6.1} img/s  (step {:.0} ms = forward {:.0} + backward {:.0} + optimizer {:.0})",
                row["images_per_second"].as_f64().unwrap_or(0.0),
                row["ms"]["step"].as_f64().unwrap_or(0.0),
                row["ms"]["forward"].as_f64().unwrap_or(0.0),
                row["ms"]["backward"].as_f64().unwrap_or(0.0),
                row["ms"]["optimizer"].as_f64().unwrap_or(0.0),
            );
            rows.push(row);
        }
    }
    if let Some(out) = out {
        std::fs::write(out, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
