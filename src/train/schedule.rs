//! What a run does epoch by epoch: its settings ([`TrainConfig`], with the paper's defaults)
//! and the progressive unfreezing schedule. Change the training schedule here.

use super::augment::Augment;

/// Which stages learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Unfreeze {
    /// The paper's progressive unfreezing: see [`stages_open`].
    Progressive,
    /// Everything from the first epoch (the right choice when training from scratch).
    All,
    /// The head and the last `n` stages only, for the whole run (1 = layer4, 4 = all four
    /// stages, never the stem): fine-tuning a backbone that already knows the anatomy, at two
    /// to three times the speed of a full backward pass on two cores.
    Top(usize),
}

/// Progressive schedule: the head alone for the first 5 % of epochs, then layer4 (to 15 %),
/// layer3 (to 30 %), layer2 (to 50 %), layer1 (to 70 %), and the stem for the rest — each step
/// longer than the last, as the paper describes.
pub fn stages_open(unfreeze: Unfreeze, epoch: usize, epochs: usize) -> usize {
    match unfreeze {
        Unfreeze::All => return 5,
        Unfreeze::Top(n) => return n.min(4),
        Unfreeze::Progressive => {}
    }
    let f = epoch as f64 / epochs.max(1) as f64;
    [0.05, 0.15, 0.30, 0.50, 0.70]
        .iter()
        .filter(|&&t| f >= t)
        .count()
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub patience: usize,
    pub seed: u64,
    pub unfreeze: Unfreeze,
    pub augment: Augment,
    pub split_by_subject: bool,
    /// Description of the data for the card.
    pub data_description: String,
    pub synthetic: bool,
    pub init: String,
    /// Hold out this fold instead of the 80/20 split (K-fold cross-validation).
    #[serde(default)]
    pub fold: Option<Fold>,
    /// Keep the last epoch instead of the one with the lowest validation loss: in
    /// cross-validation the validation set is the held-out fold, and choosing an epoch on it
    /// would flatter the fold's figures.
    #[serde(default)]
    pub keep_last: bool,
    /// Extra ROIs of every disc cut with moved corners; recorded here for the card, applied
    /// when the data set is loaded ([`super::dataset::CornerJitter`]).
    #[serde(default)]
    pub corner_jitter: Option<super::dataset::CornerJitter>,
    /// How much of every epoch each manifest gets, in manifest order (empty: equal shares).
    #[serde(default)]
    pub source_shares: Vec<f64>,
    /// How the learning rate moves over the run.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Manifest columns learnt next to the label ([`super::dataset::auxiliary_targets`]): each
    /// gets its own output of a wider head during training, with a binary cross-entropy over
    /// the discs that have it. The written model keeps only the four classes. Why: a disc's
    /// other gradings (disc degeneration, Modic changes, each endplate on its own) say more
    /// about it than one noisy binary label, and a backbone made to see them too has more to
    /// learn from per disc.
    #[serde(default)]
    pub auxiliary: Vec<String>,
    /// Weight of the auxiliary loss (the mean over the columns) against the label's loss.
    #[serde(default = "default_auxiliary_weight")]
    pub auxiliary_weight: f64,
    /// Validate, calibrate and write the model with each disc's output averaged with its
    /// mirror image's (the card's `mirror_average`). Changes nothing in the learning, so a
    /// resumed run takes it from its command line rather than from its checkpoint: resuming
    /// a finished run with it recalibrates that run's model for the averaged outputs.
    #[serde(default)]
    pub mirror_average: bool,
    /// Manifests (0-based, in `--manifest` order) that keep no validation discs: every disc of
    /// theirs trains. Their calibration must then come from elsewhere
    /// ([`super::fold_calibration`]): the bundled model learns from every real patient, where
    /// an 80/20 split kept a fifth of them for the calibration alone.
    #[serde(default)]
    pub no_validation_of: Vec<usize>,
}

/// `--auxiliary-weight`'s default, also for a checkpoint written before the field existed.
fn default_auxiliary_weight() -> f64 {
    0.5
}

/// The learning rate over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The paper's: constant, divided by ten after `patience` epochs without a better
    /// validation loss. In a short run it never decays, and a cross-validation that keeps the
    /// last epoch then keeps one taken at full rate, wherever the loss happened to swing.
    #[default]
    Plateau,
    /// Half a cosine from the initial rate to zero over the whole run, batch by batch, so the
    /// last epoch (the one cross-validation keeps) is taken at a small rate; the validation
    /// loss plays no part.
    Cosine,
}

impl LrSchedule {
    /// The rate once `done` of the run's batches (0 to 1) are behind, given the rate the plateau
    /// rule holds now.
    pub fn rate(self, plateau_lr: f64, initial: f64, done: f64) -> f64 {
        match self {
            LrSchedule::Plateau => plateau_lr,
            LrSchedule::Cosine => {
                0.5 * initial * (1.0 + (std::f64::consts::PI * done.clamp(0.0, 1.0)).cos())
            }
        }
    }
}

/// Fold `index` of `of` is the validation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fold {
    pub index: usize,
    pub of: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch: 32,
            lr: 1e-3,
            patience: 10,
            seed: 1,
            unfreeze: Unfreeze::Progressive,
            augment: Augment::default(),
            split_by_subject: false,
            data_description: String::new(),
            synthetic: false,
            init: "random (Kaiming)".into(),
            fold: None,
            keep_last: false,
            corner_jitter: None,
            source_shares: Vec::new(),
            lr_schedule: LrSchedule::Plateau,
            auxiliary: Vec::new(),
            auxiliary_weight: default_auxiliary_weight(),
            mirror_average: false,
            no_validation_of: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_falls_from_the_initial_rate_to_near_zero_and_plateau_keeps_its_own() {
        let c = LrSchedule::Cosine;
        // Six epochs of ten batches: batch b of epoch e has (10 e + b) / 60 of the run behind it.
        let at = |e: usize, b: usize| (10 * e + b) as f64 / 60.0;
        assert_eq!(c.rate(5.0, 1e-3, at(0, 0)), 1e-3);
        // Half-way through the run (epoch 3 of 6): half the rate.
        assert!((c.rate(5.0, 1e-3, at(3, 0)) - 5e-4).abs() < 1e-12);
        // The last batch of the last epoch: 1 - cos(pi / 60) of it, about 0.07 %.
        let last = c.rate(5.0, 1e-3, at(5, 9));
        assert!(last > 0.0 && last < 1e-6, "{last}");
        // Strictly falling, batch after batch.
        let all: Vec<f64> = (0..6)
            .flat_map(|e| (0..10).map(move |b| c.rate(0.0, 1e-3, at(e, b))))
            .collect();
        assert!(all.windows(2).all(|w| w[1] < w[0]));
        assert_eq!(LrSchedule::Plateau.rate(2e-4, 1e-3, at(3, 4)), 2e-4);
    }
}
