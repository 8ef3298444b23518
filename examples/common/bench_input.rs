//! What the benchmark examples share: the same deterministic network input everywhere, so
//! figures from different programs (and from Python, which reads `input.f32`) are comparable.

/// `discs` inputs of `[3, 128, 128]`, normalised-pixel-like values in [-2, 2) from a fixed
/// xorshift stream.
pub fn pseudo_random_input(discs: usize) -> Vec<f32> {
    let mut state = 0x2545F4914F6CDD1Du64;
    (0..discs * 3 * 128 * 128)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}
