//! Calibration for a model that learnt from every disc of a manifest: Platt scaling fitted on
//! the out-of-fold logits of a cross-validation of the same recipe, each fold model run on the
//! discs it held out, as scikit-learn's `CalibratedClassifierCV(ensemble=False)` does. The
//! fold models trained on four fifths of the patients each, the final model on all of them;
//! the calibration of the four-fifths models stands in for the final one's, which has no
//! held-out discs of its own.

use super::{split_discs, Dataset, Fold, TrainConfig};
use crate::class::Label;
use crate::disc::roi::{network_input, Roi};
use crate::error::{Error, Result};
use crate::model::calibration::Calibration;
use crate::model::inference::Classifier;

/// What [`calibrate_on_folds`] fitted, and on how much.
#[derive(Debug, Clone)]
pub struct FoldCalibration {
    pub calibration: Calibration,
    /// Out-of-fold discs the fit saw.
    pub discs: usize,
}

/// Fit the calibration on fold `k`'s model run on the discs fold `k` of `config`'s
/// cross-validation holds out, for every fold of `folds` (in order: fold 1 first). The folds
/// are drawn again from `config` (its seed, `split_by_subject` and manifests): the caller
/// checks they are the ones the models were trained on. The fold models' own calibrations
/// play no part; each model's card decides how it runs (its `mirror_average` too).
pub fn calibrate_on_folds(
    data: &Dataset,
    config: &TrainConfig,
    folds: &[Classifier],
) -> Result<FoldCalibration> {
    if folds.len() < 2 {
        return Err(Error::Invalid(format!(
            "a calibration on folds needs the models of at least 2 folds, got {}",
            folds.len()
        )));
    }
    let (mut logits, mut truth): (Vec<[f32; 4]>, Vec<Label>) = (Vec::new(), Vec::new());
    for (index, model) in folds.iter().enumerate() {
        let cfg = TrainConfig {
            fold: Some(Fold {
                index,
                of: folds.len(),
            }),
            no_validation_of: Vec::new(),
            ..config.clone()
        };
        let (_, held) = split_discs(data, &cfg);
        let rois: Vec<&Roi> = held.iter().map(|&i| &data.rois[i]).collect();
        let input = network_input(rois, &model.card().preprocessing);
        logits.extend(model.logits(input, held.len())?);
        truth.extend(held.iter().map(|&i| data.labels[i]));
    }
    Ok(FoldCalibration {
        calibration: Calibration::fit_platt(&logits, &truth)?,
        discs: truth.len(),
    })
}
