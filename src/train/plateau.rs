//! Learning-rate decay on a plateau, as the paper (and PyTorch's ReduceLROnPlateau, mode "min",
//! threshold 1e-4 relative): divide the rate by ten when the validation loss has not improved
//! for `patience` epochs. burn has none.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceOnPlateau {
    pub lr: f64,
    pub factor: f64,
    pub patience: usize,
    pub min_lr: f64,
    pub best: f64,
    pub bad_epochs: usize,
}

impl ReduceOnPlateau {
    pub fn new(lr: f64, factor: f64, patience: usize) -> Self {
        ReduceOnPlateau {
            lr,
            factor,
            patience,
            min_lr: 1e-7,
            best: f64::INFINITY,
            bad_epochs: 0,
        }
    }

    /// Report an epoch's validation loss; returns the rate for the next epoch.
    pub fn step(&mut self, loss: f64) -> f64 {
        if loss < self.best * (1.0 - 1e-4) {
            self.best = loss;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
            if self.bad_epochs > self.patience {
                self.lr = (self.lr * self.factor).max(self.min_lr);
                self.bad_epochs = 0;
            }
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decays_tenfold_after_patience_epochs_without_improvement() {
        let mut p = ReduceOnPlateau::new(1e-3, 0.1, 2);
        assert_eq!(p.step(1.0), 1e-3);
        assert_eq!(p.step(0.9), 1e-3);
        assert_eq!(p.step(0.95), 1e-3); // 1 bad
        assert_eq!(p.step(0.91), 1e-3); // 2 bad
        assert!((p.step(0.92) - 1e-4).abs() < 1e-15); // 3 bad > patience: decay
        assert!((p.step(0.5) - 1e-4).abs() < 1e-15); // improvement resets
    }
}
