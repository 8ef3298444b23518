//! Where the detector's time goes in tract (not a test): the whole run and each node of the
//! optimised plan (built as `Detector::from_bytes` builds it), summed by op, at one thread, for
//! a fixed `[1, 1, 256, 256]` input.
//!
//! Times are this thread's CPU time (Linux), not the wall clock: on the shared, loaded 2-core
//! machine a run waits for the CPU far longer than it runs, and CPU time is what compares with
//! onnxruntime's (`bench/detector_onnxruntime.py` prints both). Build it with `--release`:
//! the dev profile compiles tract with debug assertions, which doubles its time.
//!
//! cargo build --release --example profile_detector
//! target/release/examples/profile_detector [MODEL] [RUNS]

use endplate::model::detector::split_corner_network;
use endplate::model::storage::widen_stored_weights;
use prost::Message;
use std::collections::BTreeMap;
use std::time::Instant;
use tract_onnx::prelude::*;
use tract_onnx::tract_core;

/// This thread's CPU time in ms (CLOCK_THREAD_CPUTIME_ID), or the wall clock elsewhere.
#[cfg(target_os = "linux")]
fn cpu_ms() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.sec as f64 * 1e3 + t.nsec as f64 * 1e-6
}

#[cfg(not(target_os = "linux"))]
fn cpu_ms() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "models/endplate-detector.onnx".into());
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let bytes = std::fs::read(&path)?;
    // The file's own network only, as `Detector::from_bytes` plans it: a joined corner network
    // (the bundled file has one) is a second plan, run by the corner views alone.
    let (proto, _corner_network) =
        split_corner_network(tract_onnx::pb::ModelProto::decode(bytes.as_slice())?);
    let proto = widen_stored_weights(proto);
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&proto)?
        .with_input_fact(0, f32::fact([1, 1, 256, 256]).into())?
        .into_typed()?
        .into_optimized()?
        .into_runnable()?;
    eprintln!("isa: {:?}", tract_linalg::isa::native());
    let input: Tensor = tract_ndarray::Array4::from_shape_fn((1, 1, 256, 256), |(_, _, y, x)| {
        (((x * 7 + y * 13) % 31) as f32 / 31.0 - 0.5) * 2.0
    })
    .into();
    let mut state = tract_core::plan::SimpleState::new(&plan)?;
    for _ in 0..3 {
        state.run(tvec![input.clone().into()])?;
    }
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_ms());
        state.run(tvec![input.clone().into()])?;
        cpu.push(cpu_ms() - c);
        wall.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // Per node: (op, description, CPU ms per run).
    let mut per_node: BTreeMap<usize, (String, String, Vec<f64>)> = BTreeMap::new();
    for _ in 0..runs {
        state.run_plan_with_eval(
            tvec![input.clone().into()],
            |ctx, op_state, node, inputs| {
                let c = cpu_ms();
                let r = tract_core::plan::eval(ctx, op_state, node, inputs);
                let ms = cpu_ms() - c;
                per_node
                    .entry(node.id)
                    .or_insert_with(|| {
                        let info = node.op().info().unwrap_or_default().join(" | ");
                        (
                            node.op().name().to_string(),
                            format!("{} {info}", node.name),
                            Vec::new(),
                        )
                    })
                    .2
                    .push(ms);
                r
            },
        )?;
    }
    let mut by_op: BTreeMap<String, f64> = BTreeMap::new();
    let mut rows = Vec::new();
    for (id, (op, desc, t)) in per_node {
        let ms = median(t);
        *by_op.entry(op.clone()).or_default() += ms;
        rows.push((id, ms, op, desc));
    }
    let total: f64 = rows.iter().map(|r| r.1).sum();
    println!(
        "whole run: median {:.2} ms cpu ({:.2} ms wall) over {runs}",
        median(cpu),
        median(wall)
    );
    println!("sum of node medians: {total:.2} ms cpu");
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, ms) in ops {
        println!("{op:<24} {ms:7.3} ms {:5.1} %", 100.0 * ms / total);
    }
    println!("--- nodes in plan order (ms cpu)");
    for (id, ms, op, desc) in rows {
        let d: String = desc.chars().take(150).collect();
        println!("{id:4} {ms:7.3} {op:<20} {d}");
    }
    Ok(())
}
