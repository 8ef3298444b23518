//! Which matrix kernel tract runs in the browser, and our own kernel for it ([`kernel`]).
//!
//! tract's wasm tier picks its 8x8 f32 kernel for every convolution. That kernel keeps 16 v128
//! accumulators, as many as an x86-64 CPU has vector registers, so V8 spills them to the machine
//! stack inside its loop. The speed of those spills hangs on the stack's alignment when the
//! kernel is entered, and that alignment moves whenever V8 recompiles a function further up the
//! call chain. In Chromium 156 on a 2-core Xeon the same detection then took 85 or 220 ms,
//! flipping a hundred-odd calls in (docs/performance.md, "Why the page was sometimes 2.5×
//! slower"). tract's 4x4 kernel, which the page ran next, fits in the registers but spends more
//! loads than multiplies; [`kernel`] (8 × 4, 12 registers) does neither.
//!
//! Registered as tract registers its own: the kernel as an [`MmmRoutine`], and a [`MmmTier`] of
//! higher precedence than tract's wasm tier that names it for f32 matrix products;
//! matrix-vector products (n = 1) are left to tract.
pub mod kernel;

#[cfg(target_arch = "wasm32")]
mod registration {
    use std::sync::LazyLock;

    use tract_linalg::isa::{Arch, IsaSet};
    use tract_linalg::mmm::{DynKernel, Query, Suitable};
    use tract_linalg::mmm_routines::MmmRoutine;
    use tract_linalg::mmm_tiers::MmmTier;
    use tract_linalg::pack::Packing;
    use tract_onnx::prelude::DatumType;

    use super::kernel::{kernel_f32_8x4, MR, NR};

    /// tract's name for the kernel: the tier names it, tract finds it among the routines.
    const NAME: &str = "endplate_f32_8x4";

    static KERNEL: LazyLock<DynKernel<MR, NR, f32>> = LazyLock::new(|| {
        let mut k = DynKernel::new(NAME, kernel_f32_8x4, f32::packing(MR), f32::packing(NR));
        // Written for wasm SIMD: only a build with simd128 compiles `kernel`'s vector lanes.
        k.arch = Some(Arch::Wasm32Simd128);
        k.built = cfg!(target_feature = "simd128");
        k
    });

    inventory::submit! {
        MmmRoutine { make: || KERNEL.mmm() }
    }

    fn preferred(_: &IsaSet, dt: DatumType, query: &Query, _: &[Suitable]) -> Option<&'static str> {
        match (dt, query.n) {
            (DatumType::F32, Some(1)) => None,
            (DatumType::F32, _) => Some(NAME),
            _ => None,
        }
    }

    inventory::submit! {
        MmmTier {
            arch: Some(Arch::Wasm32Simd128),
            precedence: 2,
            name: "endplate-8x4",
            applies: |_| true,
            preferred,
        }
    }
}
