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
        }
    }
}
