//! The paper's weighted random sampler: each training sample drawn with probability
//! proportional to the inverse frequency of its class, with replacement, an epoch's worth of
//! draws per epoch — so every class is seen about equally often. burn has none; this one is
//! small and knows nothing of the network.

use rand::rngs::SmallRng;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct WeightedSampler {
    /// Cumulative weights, for drawing by binary search.
    cumulative: Vec<f64>,
}

impl WeightedSampler {
    /// Weights 1 / (count of the sample's class).
    pub fn inverse_class_frequency(classes: &[usize]) -> WeightedSampler {
        let mut counts = std::collections::HashMap::new();
        for &c in classes {
            *counts.entry(c).or_insert(0usize) += 1;
        }
        Self::new(
            &classes
                .iter()
                .map(|c| 1.0 / counts[c] as f64)
                .collect::<Vec<_>>(),
        )
    }

    /// Every source (manifest) drawn in proportion to its share (`shares[source]`; all equal
    /// when `shares` is empty), and within a source every label key equally often: weight
    /// share / (total share × keys in the source × count of the disc's key in its source). One
    /// source is [`Self::inverse_class_frequency`]. This keeps 850 real binary-labelled discs
    /// from drowning in, or being drowned by, a phantom set of any size; the shares say how
    /// much of every epoch each source gets, whatever its size.
    pub fn balanced(sources: &[usize], keys: &[usize], shares: &[f64]) -> WeightedSampler {
        let mut counts = std::collections::HashMap::new();
        for (&s, &k) in sources.iter().zip(keys) {
            *counts.entry((s, k)).or_insert(0usize) += 1;
        }
        let mut keys_in = std::collections::HashMap::new();
        for &(s, _) in counts.keys() {
            *keys_in.entry(s).or_insert(0usize) += 1;
        }
        let share = |s: usize| shares.get(s).copied().unwrap_or(1.0);
        let total: f64 = keys_in.keys().map(|&s| share(s)).sum();
        Self::new(
            &sources
                .iter()
                .zip(keys)
                .map(|(&s, &k)| share(s) / (total * keys_in[&s] as f64 * counts[&(s, k)] as f64))
                .collect::<Vec<_>>(),
        )
    }

    pub fn new(weights: &[f64]) -> WeightedSampler {
        let mut acc = 0.0;
        let cumulative = weights.iter().map(|w| {
            acc += w.max(0.0);
            acc
        });
        WeightedSampler {
            cumulative: cumulative.collect(),
        }
    }

    /// `n` draws with replacement (indices into the weights).
    pub fn draw(&self, n: usize, rng: &mut SmallRng) -> Vec<usize> {
        let total = *self.cumulative.last().unwrap_or(&0.0);
        if total <= 0.0 {
            return Vec::new();
        }
        (0..n)
            .map(|_| {
                let u = rng.random::<f64>() * total;
                self.cumulative
                    .partition_point(|&c| c <= u)
                    .min(self.cumulative.len() - 1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_papers_imbalance_comes_out_balanced() {
        // 567 / 485 / 362 / 145 discs, as in the paper.
        let classes: Vec<usize> = [567, 485, 362, 145]
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c, n))
            .collect();
        let s = WeightedSampler::inverse_class_frequency(&classes);
        let mut rng = SmallRng::seed_from_u64(3);
        let draws = 20 * classes.len();
        let mut counts = [0f64; 4];
        for i in s.draw(draws, &mut rng) {
            counts[classes[i]] += 1.0;
        }
        // Each class expected draws/4; binomial sd sqrt(n p (1-p)); allow 4 sd.
        let expected = draws as f64 / 4.0;
        let sd = (draws as f64 * 0.25 * 0.75).sqrt();
        for c in counts {
            assert!((c - expected).abs() < 4.0 * sd, "{counts:?}");
        }
        // Without weighting the rarest class would get only 9 %.
        assert!(counts[3] / draws as f64 > 0.23);
    }

    #[test]
    fn sources_and_their_labels_are_drawn_equally_often() {
        // Source 0: 900 phantom discs of four classes (600/100/100/100); source 1: 100 real
        // discs, 70 normal and 30 lesion (key 4).
        let mut sources = vec![0usize; 900];
        let mut keys: Vec<usize> = (0..900)
            .map(|i| if i < 600 { 0 } else { 1 + (i - 600) / 100 })
            .collect();
        sources.extend([1; 100]);
        keys.extend((0..100).map(|i| if i < 70 { 0 } else { 4 }));
        let s = WeightedSampler::balanced(&sources, &keys, &[]);
        let mut rng = SmallRng::seed_from_u64(5);
        let n = 40_000;
        let mut per = std::collections::HashMap::new();
        for i in s.draw(n, &mut rng) {
            *per.entry((sources[i], keys[i])).or_insert(0.0) += 1.0 / n as f64;
        }
        for (key, want) in [
            ((0, 0), 0.125),
            ((0, 3), 0.125),
            ((1, 0), 0.25),
            ((1, 4), 0.25),
        ] {
            assert!((per[&key] - want).abs() < 0.01, "{key:?}: {per:?}");
        }
    }

    #[test]
    fn shares_set_each_sources_part_of_the_draws() {
        // Real discs (source 0, two labels) get three quarters of the draws, phantoms (source
        // 1, four classes) one quarter, whatever their sizes.
        let mut sources = vec![0usize; 200];
        let mut keys: Vec<usize> = (0..200).map(|i| if i < 150 { 0 } else { 4 }).collect();
        sources.extend([1; 1000]);
        keys.extend((0..1000).map(|i| i % 4));
        let s = WeightedSampler::balanced(&sources, &keys, &[3.0, 1.0]);
        let mut rng = SmallRng::seed_from_u64(9);
        let n = 40_000;
        let mut per = std::collections::HashMap::new();
        for i in s.draw(n, &mut rng) {
            *per.entry((sources[i], keys[i])).or_insert(0.0) += 1.0 / n as f64;
        }
        for (key, want) in [
            ((0, 0), 0.375),
            ((0, 4), 0.375),
            ((1, 0), 0.0625),
            ((1, 3), 0.0625),
        ] {
            assert!((per[&key] - want).abs() < 0.01, "{key:?}: {per:?}");
        }
    }

    #[test]
    fn draws_within_a_class_are_spread_over_its_samples() {
        let classes = vec![0, 0, 0, 1];
        let s = WeightedSampler::inverse_class_frequency(&classes);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = [0usize; 4];
        for i in s.draw(8000, &mut rng) {
            counts[i] += 1;
        }
        // Sample 3 alone carries class 1's half; samples 0-2 share the other half.
        assert!((counts[3] as f64 / 8000.0 - 0.5).abs() < 0.03, "{counts:?}");
        assert!(
            counts[..3]
                .iter()
                .all(|&c| (c as f64 / 8000.0 - 1.0 / 6.0).abs() < 0.03),
            "{counts:?}"
        );
    }
}
