//! Checkpoints after every epoch, so a long run survives being stopped: the epoch's weights and
//! Adam state, then the run state that names them, each written atomically; and reading them
//! back for `--resume`, which continues exactly where the run stopped.

use super::plateau::ReduceOnPlateau;
use super::schedule::TrainConfig;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::model::card::ModelCard;
use crate::model::file::{parse_proto, read_initializers, write_model, BatchNorm};
use crate::model::resnet::{Architecture, Weights};
use std::path::{Path, PathBuf};

/// One epoch's numbers, kept in the run state so a resumed run's report has every epoch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub stages_open: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// What a checkpoint holds besides the weights: enough to continue the run where it stopped.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    pub config: TrainConfig,
    pub next_epoch: usize,
    pub plateau: ReduceOnPlateau,
    pub best_val_loss: f64,
    pub best_epoch: usize,
    pub history: Vec<EpochLog>,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub data_hash: String,
    /// The epoch's weights and Adam state, named by epoch inside the checkpoint folder. This
    /// file is written last, so a run killed mid-checkpoint resumes from the previous epoch
    /// with a matching pair.
    #[serde(default)]
    pub weights_file: String,
    #[serde(default)]
    pub optimizer_file: Option<String>,
}

/// The run state of a checkpoint folder; it names the epoch's weight and optimizer files.
pub fn checkpoint_state_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.json")
}

/// Write the epoch's weights and Adam state under epoch-tagged names, then the run state that
/// names them (atomically, last), then remove the previous epoch's pair.
pub(super) fn save_checkpoint(
    dir: &Path,
    state: &mut RunState,
    weights: &Weights,
    optim: &burn::optim::ModuleOptimizer,
    arch: &Architecture,
) -> Result<()> {
    let previous = (state.weights_file.clone(), state.optimizer_file.clone());
    let tag = format!("epoch-{:03}", state.next_epoch);
    state.weights_file = format!("{tag}.onnx");
    let optimizer_file = format!("{tag}.adam.bpk");
    let card = ModelCard::untrained("checkpoint", state.config.seed);
    write_atomic(
        &dir.join(&state.weights_file),
        &write_model(arch, weights, &card, BatchNorm::Keep)?,
    )?;
    let bytes = optim
        .to_record()
        .into_bytes()
        .map_err(|e| Error::Invalid(format!("optimizer state: {e:?}")))?;
    write_atomic(&dir.join(&optimizer_file), &bytes)?;
    state.optimizer_file = Some(optimizer_file);
    write_atomic(
        &checkpoint_state_path(dir),
        serde_json::to_string_pretty(state)
            .expect("json")
            .as_bytes(),
    )?;
    for old in [Some(previous.0), previous.1].into_iter().flatten() {
        if !old.is_empty()
            && Some(&old) != state.optimizer_file.as_ref()
            && old != state.weights_file
        {
            let _ = std::fs::remove_file(dir.join(old));
        }
    }
    Ok(())
}

/// The run checkpointed in `dir`: its state, the epoch's weights, and the best weights so far
/// (the epoch's when `best.onnx` is missing or unreadable). Refuses a run made on other data
/// (`data_hash`), since its split and sampler would no longer match the discs.
pub(super) fn load_checkpoint(dir: &Path, data_hash: &str) -> Result<(RunState, Weights, Weights)> {
    let ckpt_state = checkpoint_state_path(dir);
    let text = std::fs::read_to_string(&ckpt_state).map_err(|e| {
        Error::Invalid(format!(
            "{}: {e}; nothing to resume there (drop --resume to start a run, or point --checkpoints at the run's folder)",
            ckpt_state.display()
        ))
    })?;
    let state: RunState = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", ckpt_state.display())))?;
    if state.data_hash != data_hash {
        return Err(Error::Invalid(format!(
            "{}: the checkpoint was trained on other data (hash {}), not this manifest ({}); resume with the run's own manifest, or start afresh in another --checkpoints folder",
            ckpt_state.display(),
            state.data_hash,
            data_hash
        )));
    }
    let ckpt_model = dir.join(&state.weights_file);
    let bytes = std::fs::read(&ckpt_model).map_err(|e| Error::io(&ckpt_model, e))?;
    let proto = parse_proto(&ckpt_model.display().to_string(), &bytes)?;
    let w = read_initializers("checkpoint", &proto)?;
    let best_path = dir.join("best.onnx");
    let best = std::fs::read(&best_path)
        .ok()
        .and_then(|b| parse_proto("best", &b).ok())
        .and_then(|p| read_initializers("best", &p).ok())
        .unwrap_or_else(|| w.clone());
    Ok((state, w, best))
}
