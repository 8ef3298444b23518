//! Checkpoints after every epoch, so a long run survives being stopped: the epoch's weights and
//! Adam state, then the run state that names them, each written atomically; and reading them
//! back for `--resume`, which continues exactly where the run stopped.

use super::plateau::ReduceOnPlateau;
use super::schedule::TrainConfig;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::model::card::ModelCard;
use crate::model::file::{read_weights, write_model, BatchNorm};
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

/// Write one epoch's weights (`model`, ONNX bytes) and Adam state under epoch-tagged names in
/// `dir`; returns their file names. The caller writes its run state naming them afterwards, so a
/// run killed in between resumes from the previous epoch's matching pair.
pub(super) fn write_epoch(
    dir: &Path,
    epoch: usize,
    model: &[u8],
    optim: &burn::optim::ModuleOptimizer,
) -> Result<(String, String)> {
    let tag = format!("epoch-{epoch:03}");
    let (weights_file, optimizer_file) = (format!("{tag}.onnx"), format!("{tag}.adam.bpk"));
    write_atomic(&dir.join(&weights_file), model)?;
    let bytes = optim
        .to_record()
        .into_bytes()
        .map_err(|e| Error::Invalid(format!("optimizer state: {e:?}")))?;
    write_atomic(&dir.join(&optimizer_file), &bytes)?;
    Ok((weights_file, optimizer_file))
}

/// Remove the files of an epoch the run state no longer names.
pub(super) fn remove_replaced(dir: &Path, old: [Option<&str>; 2], now: [&str; 2]) {
    for f in old.into_iter().flatten() {
        if !f.is_empty() && !now.contains(&f) {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }
}

/// Write a run state atomically, as pretty JSON.
pub(super) fn write_state(path: &Path, state: &impl serde::Serialize) -> Result<()> {
    write_atomic(
        path,
        serde_json::to_string_pretty(state)
            .expect("json")
            .as_bytes(),
    )
}

/// Read the run state at `path` for `--resume`, refusing one made on other data (`hash_of` the
/// state against `data_hash`): its split, sampler and draws would no longer match.
pub(super) fn read_state<T: serde::de::DeserializeOwned>(
    path: &Path,
    data_hash: &str,
    hash_of: impl Fn(&T) -> &str,
) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Invalid(format!(
            "{}: {e}; nothing to resume there (drop --resume to start a run, or point --checkpoints at the run's folder)",
            path.display()
        ))
    })?;
    let state: T = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    if hash_of(&state) != data_hash {
        return Err(Error::Invalid(format!(
            "{}: the checkpoint was trained on other data (hash {}), not this data ({}); resume with the run's own data, or start afresh in another --checkpoints folder",
            path.display(),
            hash_of(&state),
            data_hash
        )));
    }
    Ok(state)
}

/// The epoch's weights and the best so far (the epoch's when the best file is missing or
/// unreadable).
pub(super) fn read_weights_and_best(
    dir: &Path,
    epoch_file: &str,
    best_file: &str,
) -> Result<(Weights, Weights)> {
    let w = read_weights(&dir.join(epoch_file))?;
    let best = read_weights(&dir.join(best_file)).unwrap_or_else(|_| w.clone());
    Ok((w, best))
}

/// Adam with the state saved in `file` (`dir`-relative), or fresh when there is none.
pub(super) fn adam(dir: &Path, file: Option<&str>) -> Result<burn::optim::ModuleOptimizer> {
    use burn::optim::{AdamConfig, OptimizerRecord};
    let optim = AdamConfig::new().init();
    let Some(file) = file else { return Ok(optim) };
    let path = dir.join(file);
    let record = OptimizerRecord::load(&path)
        .map_err(|e| Error::Invalid(format!("{}: {e:?}", path.display())))?;
    Ok(optim.load_record(record))
}

/// Write the epoch's weights and Adam state, then the run state that names them (atomically,
/// last), then remove the previous epoch's pair.
pub(super) fn save_checkpoint(
    dir: &Path,
    state: &mut RunState,
    weights: &Weights,
    optim: &burn::optim::ModuleOptimizer,
    arch: &Architecture,
) -> Result<()> {
    let card = ModelCard::untrained("checkpoint", state.config.seed);
    let model = write_model(arch, weights, &card, BatchNorm::Keep)?;
    let (wf, of) = write_epoch(dir, state.next_epoch, &model, optim)?;
    let old_w = std::mem::replace(&mut state.weights_file, wf);
    let old_o = state.optimizer_file.replace(of);
    write_state(&checkpoint_state_path(dir), state)?;
    remove_replaced(
        dir,
        [Some(old_w.as_str()), old_o.as_deref()],
        [
            &state.weights_file,
            state.optimizer_file.as_deref().unwrap_or_default(),
        ],
    );
    Ok(())
}

/// The run checkpointed in `dir`: its state, the epoch's weights, and the best weights so far.
pub(super) fn load_checkpoint(dir: &Path, data_hash: &str) -> Result<(RunState, Weights, Weights)> {
    let state: RunState = read_state(&checkpoint_state_path(dir), data_hash, |s: &RunState| {
        &s.data_hash
    })?;
    let (w, best) = read_weights_and_best(dir, &state.weights_file, "best.onnx")?;
    Ok((state, w, best))
}
