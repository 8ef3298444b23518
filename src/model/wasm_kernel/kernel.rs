//! The page's f32 matrix kernel: an 8 × 4 tile held as four columns of two `v128` each.
//!
//! Why this shape. tract's 4x4 kernel (what the page ran before) broadcasts four scalars of the
//! packed A panel and multiplies them by one vector of B: five loads for four multiply-adds.
//! Its 8x8 kernel spends fewer but keeps 16 accumulators, as many vector registers as x86-64
//! has, and V8 spills them (docs/performance.md, "Why the page was sometimes 2.5× slower").
//! Here each k step reads A's
//! eight rows as two vectors and B's four columns as one, and broadcasts each column with a
//! shuffle: three loads and four shuffles for eight multiply-adds, in 8 accumulators plus 4
//! temporaries, 12 registers. With eight independent accumulators the relaxed build can use the
//! fused multiply-add without a dependency chain stalling it (tract's `madd.rs` notes the same
//! threshold, as does XNNPACK). Measured: a disc 30 % and a detection 24 % faster in the page
//! than with the 4x4 kernel (docs/performance.md, "Since session 21").
//!
//! The accumulators are columns, so a row-major output (a convolution's channels × pixels,
//! the usual case) is stored after a 4 × 4 transpose per half tile; other layouts take the
//! strided path. Every fused operation tract may hand a kernel is handled, as tract's own wasm
//! kernels do, following the reference semantics of tract's generic kernel (`op(operand, acc)`,
//! the `*SubF` variants flipped).
//!
//! The vector operations go through [`lanes`], one-line wrappers over `std::arch::wasm32` in
//! the wasm build and a plain `[f32; 4]` elsewhere, so that the kernel's layout and every
//! fused arm are tested natively (`cargo test`), not only through the browser tests.
use tract_linalg::mmm::FusedKerSpec;

use lanes::V;

/// Rows (`MR`) and columns (`NR`) of the tile.
pub const MR: usize = 8;
pub const NR: usize = 4;

/// Runs one tile's list of fused operations, as tract's kernels do: 0 when done.
///
/// # Safety
/// The pointers inside `spec` must be what tract passes a kernel declared with an 8-row packed
/// A, a 4-column packed B and f32 storage: panels of `k` steps, operand vectors of 8 (per row)
/// or 4 (per column) values, and tiles of 8 × 4 f32 cells at the given strides.
pub unsafe fn kernel_f32_8x4(spec: &[FusedKerSpec<f32>]) -> isize {
    use lanes::*;
    let z = splat(0.0);
    // c{j}{l,h}: column j of the tile, rows 0–3 (l) and 4–7 (h).
    let (mut c0l, mut c0h, mut c1l, mut c1h) = (z, z, z, z);
    let (mut c2l, mut c2h, mut c3l, mut c3h) = (z, z, z, z);
    // `acc = $f(operand, acc)` for the eight accumulators, each with its own operand (given in
    // the accumulators' order), the one shape of every element-wise arm.
    macro_rules! each {
        ([$o0l:expr, $o0h:expr, $o1l:expr, $o1h:expr, $o2l:expr, $o2h:expr, $o3l:expr, $o3h:expr], $f:expr) => {{
            c0l = $f($o0l, c0l);
            c0h = $f($o0h, c0h);
            c1l = $f($o1l, c1l);
            c1h = $f($o1h, c1h);
            c2l = $f($o2l, c2l);
            c2h = $f($o2h, c2h);
            c3l = $f($o3l, c3l);
            c3h = $f($o3h, c3h);
        }};
    }
    // One operand for all eight accumulators.
    macro_rules! all {
        ($s:expr, $f:expr) => {{
            let s = $s;
            each!([s, s, s, s, s, s, s, s], $f)
        }};
    }
    // A per-row operand (8 values, down the lanes).
    macro_rules! per_row {
        ($p:expr, $f:expr) => {{
            let (rl, rh) = (load($p), load($p.add(4)));
            each!([rl, rh, rl, rh, rl, rh, rl, rh], $f)
        }};
    }
    // A per-column operand (4 values, one per accumulator pair).
    macro_rules! per_col {
        ($p:expr, $f:expr) => {{
            let v = load($p);
            let (s0, s1, s2, s3) = (lane::<0>(v), lane::<1>(v), lane::<2>(v), lane::<3>(v));
            each!([s0, s0, s1, s1, s2, s2, s3, s3], $f)
        }};
    }
    let flip = |f: fn(V, V) -> V| move |s: V, acc: V| f(acc, s);
    for op in spec {
        match *op {
            FusedKerSpec::Done => break,
            FusedKerSpec::Clear => all!(z, |s, _| s),
            FusedKerSpec::LoadTile(col_major, _row_major) => unsafe {
                let at = |i: usize| load(col_major.add(4 * i));
                let loaded = |o: V, _: V| o;
                each!(
                    [at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7)],
                    loaded
                )
            },
            FusedKerSpec::ScalarMin(a) => all!(splat(a), min),
            FusedKerSpec::ScalarMax(a) => all!(splat(a), max),
            FusedKerSpec::ScalarAdd(a) => all!(splat(a), add),
            FusedKerSpec::ScalarMul(a) => all!(splat(a), mul),
            FusedKerSpec::ScalarSub(a) => all!(splat(a), sub),
            FusedKerSpec::ScalarSubF(a) => all!(splat(a), flip(sub)),
            FusedKerSpec::LeakyRelu(a) => all!(splat(a), leaky_relu),
            // One line per variant, as in tract's own kernels: the enum has no finer shape.
            FusedKerSpec::PerRowMin(p) => unsafe { per_row!(p, min) },
            FusedKerSpec::PerRowMax(p) => unsafe { per_row!(p, max) },
            FusedKerSpec::PerRowAdd(p) => unsafe { per_row!(p, add) },
            FusedKerSpec::PerRowMul(p) => unsafe { per_row!(p, mul) },
            FusedKerSpec::PerRowSub(p) => unsafe { per_row!(p, sub) },
            FusedKerSpec::PerRowSubF(p) => unsafe { per_row!(p, flip(sub)) },
            FusedKerSpec::PerColMin(p) => unsafe { per_col!(p, min) },
            FusedKerSpec::PerColMax(p) => unsafe { per_col!(p, max) },
            FusedKerSpec::PerColAdd(p) => unsafe { per_col!(p, add) },
            FusedKerSpec::PerColMul(p) => unsafe { per_col!(p, mul) },
            FusedKerSpec::PerColSub(p) => unsafe { per_col!(p, sub) },
            FusedKerSpec::PerColSubF(p) => unsafe { per_col!(p, flip(sub)) },
            // Quantisation steps reach an f32 kernel as plain scalings, as in tract's f32
            // kernels.
            FusedKerSpec::QScale(shift, rp, mult) => {
                all!(
                    splat(tract_linalg::Scaler::from_fuse_params(shift, rp, mult).scale),
                    mul
                )
            }
            FusedKerSpec::RoundingShiftRight(shift, _) => {
                all!(splat(2f32.powi(-(shift as i32))), mul)
            }
            FusedKerSpec::ShiftLeft(shift) => all!(splat(2f32.powi(shift as i32)), mul),
            FusedKerSpec::AddRowColProducts(rows, cols) => unsafe {
                let (rl, rh, v) = (load(rows), load(rows.add(4)), load(cols));
                let (s0, s1, s2, s3) = (lane::<0>(v), lane::<1>(v), lane::<2>(v), lane::<3>(v));
                c0l = madd(c0l, rl, s0);
                c0h = madd(c0h, rh, s0);
                c1l = madd(c1l, rl, s1);
                c1h = madd(c1h, rh, s1);
                c2l = madd(c2l, rl, s2);
                c2h = madd(c2h, rh, s2);
                c3l = madd(c3l, rl, s3);
                c3h = madd(c3h, rh, s3);
            },
            FusedKerSpec::AddUnicast(tile) => unsafe {
                let [t0l, t0h, t1l, t1h, t2l, t2h, t3l, t3h] = read_tile(
                    tile.ptr as *const u8,
                    tile.row_byte_stride,
                    tile.col_byte_stride,
                );
                each!([t0l, t0h, t1l, t1h, t2l, t2h, t3l, t3h], add)
            },
            FusedKerSpec::Store(tile) => unsafe {
                write_tile(
                    tile.ptr,
                    tile.row_byte_stride,
                    tile.col_byte_stride,
                    [c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h],
                )
            },
            FusedKerSpec::AddMatMul {
                k,
                pa,
                pb,
                packing: _,
            } => unsafe {
                let (a, b) = (pa as *const f32, pb as *const f32);
                for i in 0..k {
                    let al = load(a.add(MR * i));
                    let ah = load(a.add(MR * i + 4));
                    let v = load(b.add(NR * i));
                    let s = lane::<0>(v);
                    c0l = madd(c0l, al, s);
                    c0h = madd(c0h, ah, s);
                    let s = lane::<1>(v);
                    c1l = madd(c1l, al, s);
                    c1h = madd(c1h, ah, s);
                    let s = lane::<2>(v);
                    c2l = madd(c2l, al, s);
                    c2h = madd(c2h, ah, s);
                    let s = lane::<3>(v);
                    c3l = madd(c3l, al, s);
                    c3h = madd(c3h, ah, s);
                }
            },
        }
    }
    0
}

/// Reads an 8 × 4 f32 tile at the given byte strides into column halves (the accumulators'
/// layout). Contiguous rows, a convolution's usual layout, are read as vectors and transposed.
unsafe fn read_tile(ptr: *const u8, row_stride: isize, col_stride: isize) -> [V; 8] {
    use lanes::*;
    unsafe {
        let at = |r: isize| ptr.offset(r * row_stride) as *const f32;
        if col_stride == 4 {
            let (c0l, c1l, c2l, c3l) =
                transpose(load(at(0)), load(at(1)), load(at(2)), load(at(3)));
            let (c0h, c1h, c2h, c3h) =
                transpose(load(at(4)), load(at(5)), load(at(6)), load(at(7)));
            [c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h]
        } else {
            let cell =
                |r: isize, c: isize| *(ptr.offset(r * row_stride + c * col_stride) as *const f32);
            let half = |c: isize, r: isize| {
                from([cell(r, c), cell(r + 1, c), cell(r + 2, c), cell(r + 3, c)])
            };
            [
                half(0, 0),
                half(0, 4),
                half(1, 0),
                half(1, 4),
                half(2, 0),
                half(2, 4),
                half(3, 0),
                half(3, 4),
            ]
        }
    }
}

/// Writes the accumulators (column halves) as an 8 × 4 f32 tile at the given byte strides.
unsafe fn write_tile(ptr: *mut u8, row_stride: isize, col_stride: isize, c: [V; 8]) {
    use lanes::*;
    unsafe {
        let at = |r: isize| ptr.offset(r * row_stride) as *mut f32;
        if col_stride == 4 {
            let (r0, r1, r2, r3) = transpose(c[0], c[2], c[4], c[6]);
            let (r4, r5, r6, r7) = transpose(c[1], c[3], c[5], c[7]);
            for (r, v) in [r0, r1, r2, r3, r4, r5, r6, r7].into_iter().enumerate() {
                store(at(r as isize), v);
            }
        } else {
            for col in 0..NR {
                let (lo, hi) = (to_array(c[2 * col]), to_array(c[2 * col + 1]));
                for (r, x) in lo.into_iter().chain(hi).enumerate() {
                    *(ptr.offset(r as isize * row_stride + col as isize * col_stride)
                        as *mut f32) = x;
                }
            }
        }
    }
}

/// Four f32 lanes: `std::arch::wasm32` in the SIMD build, one line per operation.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use std::arch::wasm32::*;

    pub type V = v128;

    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        unsafe { v128_load(p as *const v128) }
    }
    #[inline(always)]
    pub unsafe fn store(p: *mut f32, v: V) {
        unsafe { v128_store(p as *mut v128, v) }
    }
    #[inline(always)]
    pub fn splat(x: f32) -> V {
        f32x4_splat(x)
    }
    #[inline(always)]
    pub fn from(x: [f32; 4]) -> V {
        f32x4(x[0], x[1], x[2], x[3])
    }
    #[inline(always)]
    pub fn to_array(v: V) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(v),
            f32x4_extract_lane::<1>(v),
            f32x4_extract_lane::<2>(v),
            f32x4_extract_lane::<3>(v),
        ]
    }
    /// Lane `L` in all four lanes.
    #[inline(always)]
    pub fn lane<const L: usize>(v: V) -> V {
        i32x4_shuffle::<L, L, L, L>(v, v)
    }
    #[inline(always)]
    pub fn add(a: V, b: V) -> V {
        f32x4_add(a, b)
    }
    #[inline(always)]
    pub fn sub(a: V, b: V) -> V {
        f32x4_sub(a, b)
    }
    #[inline(always)]
    pub fn mul(a: V, b: V) -> V {
        f32x4_mul(a, b)
    }
    #[inline(always)]
    pub fn min(a: V, b: V) -> V {
        f32x4_min(a, b)
    }
    #[inline(always)]
    pub fn max(a: V, b: V) -> V {
        f32x4_max(a, b)
    }
    /// `acc + a * b`, fused where the build has relaxed SIMD.
    #[inline(always)]
    pub fn madd(acc: V, a: V, b: V) -> V {
        #[cfg(target_feature = "relaxed-simd")]
        {
            f32x4_relaxed_madd(a, b, acc)
        }
        #[cfg(not(target_feature = "relaxed-simd"))]
        {
            f32x4_add(acc, f32x4_mul(a, b))
        }
    }
    /// `x` where positive, else `alpha * x`.
    #[inline(always)]
    pub fn leaky_relu(alpha: V, x: V) -> V {
        v128_bitselect(x, f32x4_mul(alpha, x), f32x4_gt(x, f32x4_splat(0.0)))
    }
    /// Rows to columns of a 4 × 4 block.
    #[inline(always)]
    pub fn transpose(a: V, b: V, c: V, d: V) -> (V, V, V, V) {
        let (ab01, ab23) = (
            i32x4_shuffle::<0, 4, 1, 5>(a, b),
            i32x4_shuffle::<2, 6, 3, 7>(a, b),
        );
        let (cd01, cd23) = (
            i32x4_shuffle::<0, 4, 1, 5>(c, d),
            i32x4_shuffle::<2, 6, 3, 7>(c, d),
        );
        (
            i32x4_shuffle::<0, 1, 4, 5>(ab01, cd01),
            i32x4_shuffle::<2, 3, 6, 7>(ab01, cd01),
            i32x4_shuffle::<0, 1, 4, 5>(ab23, cd23),
            i32x4_shuffle::<2, 3, 6, 7>(ab23, cd23),
        )
    }
}

/// The same operations on `[f32; 4]`, so the kernel runs (and is tested) natively.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    pub type V = [f32; 4];

    pub unsafe fn load(p: *const f32) -> V {
        unsafe { std::ptr::read_unaligned(p as *const V) }
    }
    pub unsafe fn store(p: *mut f32, v: V) {
        unsafe { std::ptr::write_unaligned(p as *mut V, v) }
    }
    pub fn splat(x: f32) -> V {
        [x; 4]
    }
    pub fn from(x: [f32; 4]) -> V {
        x
    }
    pub fn to_array(v: V) -> [f32; 4] {
        v
    }
    pub fn lane<const L: usize>(v: V) -> V {
        [v[L]; 4]
    }
    fn each(a: V, b: V, f: impl Fn(f32, f32) -> f32) -> V {
        std::array::from_fn(|i| f(a[i], b[i]))
    }
    pub fn add(a: V, b: V) -> V {
        each(a, b, |a, b| a + b)
    }
    pub fn sub(a: V, b: V) -> V {
        each(a, b, |a, b| a - b)
    }
    pub fn mul(a: V, b: V) -> V {
        each(a, b, |a, b| a * b)
    }
    pub fn min(a: V, b: V) -> V {
        each(a, b, f32::min)
    }
    pub fn max(a: V, b: V) -> V {
        each(a, b, f32::max)
    }
    pub fn madd(acc: V, a: V, b: V) -> V {
        add(acc, mul(a, b))
    }
    pub fn leaky_relu(alpha: V, x: V) -> V {
        each(alpha, x, |a, x| if x > 0.0 { x } else { a * x })
    }
    pub fn transpose(a: V, b: V, c: V, d: V) -> (V, V, V, V) {
        let col = |i: usize| [a[i], b[i], c[i], d[i]];
        (col(0), col(1), col(2), col(3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::mmm::OutputStoreKer;
    use tract_linalg::mmm::RoundingPolicy;

    /// An 8 × 4 tile as rows of columns, the reference the kernel's arms are checked against.
    type Tile = [[f32; NR]; MR];

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.37 + seed).sin() * 3.0).round() / 2.0)
            .collect()
    }

    fn tile_of(v: &[f32]) -> Tile {
        std::array::from_fn(|r| std::array::from_fn(|c| v[r * NR + c]))
    }

    /// Runs `ops` after loading `start` and stores into a row-major buffer, or a column-major
    /// one, or one with a gap between rows and columns, and reads the tile back.
    fn run(start: &Tile, ops: &[FusedKerSpec<f32>], layout: (isize, isize)) -> Tile {
        let col_major: Vec<f32> = (0..NR)
            .flat_map(|c| (0..MR).map(move |r| start[r][c]))
            .collect();
        let (row_stride, col_stride) = layout;
        let mut out = vec![f32::NAN; 64];
        let store = OutputStoreKer {
            ptr: out.as_mut_ptr() as *mut u8,
            row_byte_stride: row_stride * 4,
            col_byte_stride: col_stride * 4,
            item_size: 4,
        };
        let mut spec = vec![FusedKerSpec::LoadTile(col_major.as_ptr(), std::ptr::null())];
        spec.extend_from_slice(ops);
        spec.push(FusedKerSpec::Store(store));
        spec.push(FusedKerSpec::Done);
        assert_eq!(unsafe { kernel_f32_8x4(&spec) }, 0);
        std::array::from_fn(|r| {
            std::array::from_fn(|c| {
                out[(r as isize * row_stride + c as isize * col_stride) as usize]
            })
        })
    }

    const LAYOUTS: [(isize, isize); 3] = [(4, 1), (1, 8), (7, 2)];

    #[test]
    fn add_mat_mul_is_the_product_of_the_packed_panels() {
        let k = 13;
        let (pa, pb) = (values(MR * k, 0.1), values(NR * k, 2.0));
        let start = tile_of(&values(32, 5.0));
        let spec = [FusedKerSpec::AddMatMul {
            k,
            pa: pa.as_ptr() as *const u8,
            pb: pb.as_ptr() as *const u8,
            packing: 0,
        }];
        for layout in LAYOUTS {
            let got = run(&start, &spec, layout);
            for r in 0..MR {
                for c in 0..NR {
                    let want =
                        start[r][c] + (0..k).map(|i| pa[i * MR + r] * pb[i * NR + c]).sum::<f32>();
                    assert!(
                        (got[r][c] - want).abs() < 1e-4,
                        "{layout:?} ({r}, {c}): {} vs {want}",
                        got[r][c]
                    );
                }
            }
        }
    }

    #[test]
    fn clear_zeroes_and_store_writes_every_cell_in_every_layout() {
        let start = tile_of(&values(32, 1.0));
        for layout in LAYOUTS {
            assert_eq!(run(&start, &[], layout), start, "{layout:?}");
            assert_eq!(run(&start, &[FusedKerSpec::Clear], layout), [[0.0; NR]; MR]);
        }
    }

    #[test]
    fn scalar_row_and_column_arms_follow_tracts_reference_order() {
        let start = tile_of(&values(32, 3.0));
        let rows = values(MR, 7.0);
        let cols = values(NR, 11.0);
        type Spec = FusedKerSpec<f32>;
        /// One operation: tract's reference `f(operand, acc)` and its three forms.
        struct Arm {
            name: &'static str,
            reference: fn(f32, f32) -> f32,
            scalar: fn(f32) -> Spec,
            per_row: fn(*const f32) -> Spec,
            per_col: fn(*const f32) -> Spec,
        }
        let arm = |name, reference, scalar, per_row, per_col| Arm {
            name,
            reference,
            scalar,
            per_row,
            per_col,
        };
        let arms = [
            arm(
                "min",
                f32::min,
                Spec::ScalarMin,
                Spec::PerRowMin,
                Spec::PerColMin,
            ),
            arm(
                "max",
                f32::max,
                Spec::ScalarMax,
                Spec::PerRowMax,
                Spec::PerColMax,
            ),
            arm(
                "add",
                |s, a| s + a,
                Spec::ScalarAdd,
                Spec::PerRowAdd,
                Spec::PerColAdd,
            ),
            arm(
                "mul",
                |s, a| s * a,
                Spec::ScalarMul,
                Spec::PerRowMul,
                Spec::PerColMul,
            ),
            arm(
                "sub",
                |s, a| s - a,
                Spec::ScalarSub,
                Spec::PerRowSub,
                Spec::PerColSub,
            ),
            arm(
                "subf",
                |s, a| a - s,
                Spec::ScalarSubF,
                Spec::PerRowSubF,
                Spec::PerColSubF,
            ),
        ];
        for Arm {
            name,
            reference: f,
            scalar,
            per_row,
            per_col,
        } in arms
        {
            let s = 0.75;
            let (scalar, per_row, per_col) =
                (scalar(s), per_row(rows.as_ptr()), per_col(cols.as_ptr()));
            let want = |operand: &dyn Fn(usize, usize) -> f32| -> Tile {
                std::array::from_fn(|r| std::array::from_fn(|c| f(operand(r, c), start[r][c])))
            };
            assert_eq!(
                run(&start, &[scalar], (4, 1)),
                want(&|_, _| s),
                "scalar {name}"
            );
            assert_eq!(
                run(&start, &[per_row], (4, 1)),
                want(&|r, _| rows[r]),
                "per row {name}"
            );
            assert_eq!(
                run(&start, &[per_col], (4, 1)),
                want(&|_, c| cols[c]),
                "per column {name}"
            );
        }
    }

    #[test]
    fn leaky_relu_scalings_products_and_unicast_match_the_reference() {
        let start = tile_of(&values(32, 4.0));
        let each = |f: &dyn Fn(usize, usize, f32) -> f32| -> Tile {
            std::array::from_fn(|r| std::array::from_fn(|c| f(r, c, start[r][c])))
        };
        let leaky = run(&start, &[FusedKerSpec::LeakyRelu(0.1)], (4, 1));
        assert_eq!(leaky, each(&|_, _, x| if x > 0.0 { x } else { 0.1 * x }));
        assert!(
            start.iter().flatten().any(|&x| x < 0.0),
            "the test needs negative cells"
        );

        let shifted = run(&start, &[FusedKerSpec::ShiftLeft(3)], (4, 1));
        assert_eq!(shifted, each(&|_, _, x| x * 8.0));
        let halved = run(
            &start,
            &[FusedKerSpec::RoundingShiftRight(1, RoundingPolicy::Even)],
            (4, 1),
        );
        assert_eq!(halved, each(&|_, _, x| x * 0.5));

        let (rows, cols) = (values(MR, 8.0), values(NR, 9.0));
        let products = FusedKerSpec::AddRowColProducts(rows.as_ptr(), cols.as_ptr());
        assert_eq!(
            run(&start, &[products], (4, 1)),
            each(&|r, c, x| x + rows[r] * cols[c])
        );

        for (row_stride, col_stride) in LAYOUTS {
            let other = values(64, 12.0);
            let tile = OutputStoreKer {
                ptr: other.as_ptr() as *mut u8,
                row_byte_stride: row_stride * 4,
                col_byte_stride: col_stride * 4,
                item_size: 4,
            };
            let got = run(&start, &[FusedKerSpec::AddUnicast(tile)], (4, 1));
            let cell =
                |r: usize, c: usize| other[r * row_stride as usize + c * col_stride as usize];
            assert_eq!(
                got,
                each(&|r, c, x| x + cell(r, c)),
                "({row_stride}, {col_stride})"
            );
        }
    }
}
