//! Which matrix kernel tract runs in the browser. tract's wasm tier picks its 8x8 f32 kernel for
//! every convolution. That kernel keeps 16 v128 accumulators, as many as an x86-64 CPU has
//! vector registers, so V8 spills them to the machine stack inside its loop. The speed of those
//! spills hangs on the stack's alignment when the kernel is entered, and that alignment moves
//! whenever V8 recompiles a function further up the call chain. In Chromium 156 on a 2-core Xeon
//! the same detection then took 85 or 220 ms, flipping a hundred-odd calls in (docs/performance.md, "Why the
//! page was sometimes 2.5× slower"). The 4x4 kernel's accumulators fit in the registers, so its
//! speed does not move: about 15 % slower than the 8x8 on its good days, never 2.5×.
//!
//! Registered as tract registers its own tiers: a [`MmmTier`] of higher precedence than
//! tract's wasm tier, answering for f32 matrix products; matrix-vector products (n = 1) are
//! left to tract.
use tract_linalg::isa::{Arch, IsaSet};
use tract_linalg::mmm::{Query, Suitable};
use tract_linalg::mmm_tiers::MmmTier;
use tract_onnx::prelude::DatumType;

fn preferred(_: &IsaSet, dt: DatumType, query: &Query, _: &[Suitable]) -> Option<&'static str> {
    match (dt, query.n) {
        (DatumType::F32, Some(1)) => None,
        (DatumType::F32, _) => Some(tract_linalg::wasm::wasm_f32_4x4.name.as_str()),
        _ => None,
    }
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::Wasm32Simd128),
        precedence: 2,
        name: "endplate-registers",
        applies: |_| true,
        preferred,
    }
}
