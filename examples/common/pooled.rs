//! The ROI downsampled to 32x32 by block means, centred on 0: the raw-pixel features of the
//! simple logistic baselines (phantom and real), so both measure the same thing.

pub const SIDE: usize = 32;

pub fn pooled_pixels(roi: &endplate::Roi) -> Vec<f64> {
    let k = roi.size / SIDE;
    let mut f = Vec::with_capacity(SIDE * SIDE);
    for by in 0..SIDE {
        for bx in 0..SIDE {
            let mut s = 0.0;
            for yy in 0..k {
                for xx in 0..k {
                    s += roi.pixels[(by * k + yy) * roi.size + bx * k + xx] as f64;
                }
            }
            f.push(s / (k * k) as f64 - 0.5);
        }
    }
    f
}
