//! The paper's contrast step: saturate the bottom and top 1 % of all pixel values of the slice
//! and map linearly to [0, 1], as MATLAB's `imadjust(I, stretchlim(I))`.

use super::slice::Slice;

/// The input values that map to 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    pub low: f32,
    pub high: f32,
}

impl Stretch {
    /// `stretchlim` over the whole slice at native depth. For integer data this is exactly
    /// MATLAB's histogram rule: `low` is the first value whose cumulative fraction exceeds
    /// `low_fraction`, `high` the first whose cumulative fraction reaches `high_fraction`.
    /// A slice where both coincide (flat, or nearly so) falls back to its min and max, as MATLAB
    /// falls back to the full range.
    pub fn of(slice: &Slice, low_fraction: f64, high_fraction: f64) -> Stretch {
        Self::of_values(&slice.pixels, low_fraction, high_fraction)
    }

    pub fn of_values(values: &[f32], low_fraction: f64, high_fraction: f64) -> Stretch {
        let n = values.len();
        if n == 0 {
            return Stretch {
                low: 0.0,
                high: 1.0,
            };
        }
        let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stretch {
                low: 0.0,
                high: 1.0,
            };
        }
        let n = v.len();
        let k_low = ((low_fraction * n as f64).floor() as usize).min(n - 1);
        let k_high = ((high_fraction * n as f64).ceil() as usize)
            .saturating_sub(1)
            .min(n - 1);
        let cmp = |a: &f32, b: &f32| a.total_cmp(b);
        let (_, &mut low, _) = v.select_nth_unstable_by(k_low, cmp);
        let (_, &mut high, _) = v.select_nth_unstable_by(k_high, cmp);
        if high > low {
            return Stretch { low, high };
        }
        let min = v.iter().copied().fold(f32::INFINITY, f32::min);
        let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max > min {
            Stretch {
                low: min,
                high: max,
            }
        } else {
            Stretch {
                low: min,
                high: min + 1.0,
            }
        }
    }

    /// Map one native value to [0, 1].
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        ((x - self.low) / (self.high - self.low)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_matlab_stretchlim_on_a_ramp() {
        // 0..=99 each once: cumulative fraction after value v is (v+1)/100.
        // low: first v with (v+1)/100 > 0.01 -> v = 1; high: first with >= 0.99 -> v = 98.
        let v: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let s = Stretch::of_values(&v, 0.01, 0.99);
        assert_eq!((s.low, s.high), (1.0, 98.0));
        assert_eq!(s.apply(0.0), 0.0);
        assert_eq!(s.apply(99.0), 1.0);
        assert!((s.apply(49.5) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn flat_image_falls_back_without_dividing_by_zero() {
        let s = Stretch::of_values(&[7.0; 50], 0.01, 0.99);
        assert!(s.high > s.low);
        assert_eq!(s.apply(7.0), 0.0);
    }

    #[test]
    fn mostly_background_keeps_the_bright_tail() {
        // 98 % zeros, 2 % at 200: low = 0, high = 200.
        let mut v = vec![0.0f32; 980];
        v.extend(std::iter::repeat_n(200.0, 20));
        let s = Stretch::of_values(&v, 0.01, 0.99);
        assert_eq!((s.low, s.high), (0.0, 200.0));
    }
}
