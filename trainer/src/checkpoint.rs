//! Run directories and atomic checkpoints.
//!
//! A checkpoint is one safetensors file holding the network (`net/<name>`), the optimizer's
//! moments (`adam.m/<name>`, `adam.v/<name>`) and, in its metadata, the loop position
//! ([`TrainState`]): everything a resumed run needs, replaced in one atomic rename.
//!
//! The metadata also holds the run's identity (`advlens.run_id`, the id in its `config.json`)
//! and a SHA-256 over the state and every tensor (`advlens.checksum`): a bit-flipped file, a
//! hand-edited step counter or a checkpoint copied in from another run is refused on resume,
//! never continued silently.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::net::Net;
use crate::optim::Adam;

const STATE_KEY: &str = "advlens.train_state";
const RUN_ID_KEY: &str = "advlens.run_id";
const CHECKSUM_KEY: &str = "advlens.checksum";

/// A fresh run id: 16 random hex digits (std's per-process random hash keys, seeded by the OS).
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    format!("{:016x}", std::collections::hash_map::RandomState::new().build_hasher().finish())
}

/// SHA-256 over the state JSON and every tensor (name, shape, bytes) in name order, in hex.
/// The tensors are borrowed: a large checkpoint is hashed without a copy.
fn checksum(state_json: &str, run_id: &str, entries: &mut [(&str, &[usize], &[u8])]) -> String {
    use sha2::{Digest, Sha256};
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    h.update(run_id.as_bytes());
    h.update([0]);
    h.update(state_json.as_bytes());
    for (name, shape, bytes) in entries.iter() {
        h.update([0]);
        h.update(name.as_bytes());
        for d in shape.iter() {
            h.update((*d as u64).to_le_bytes());
        }
        h.update(bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Files of a run directory.
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn model(&self) -> PathBuf {
        self.root.join("model.json")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// Written every epoch and every `--checkpoint-every` steps; `--resume` starts from it.
    pub fn last(&self) -> PathBuf {
        self.root.join("last.safetensors")
    }
    /// The epoch with the best validation accuracy so far.
    pub fn best(&self) -> PathBuf {
        self.root.join("best.safetensors")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn curves(&self) -> PathBuf {
        self.root.join("curves.png")
    }
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval.json")
    }
}

/// Where the training loop is, and the running sums of the epoch in progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Steps completed in the epoch in progress (0 at an epoch boundary).
    pub step: usize,
    pub global_step: u64,
    pub best_accuracy: Option<f64>,
    pub best_epoch: Option<usize>,
    pub loss_sum: f64,
    pub correct: i64,
    pub seen: usize,
    pub seconds: f64,
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file:
/// write a temporary file, fsync it, rename it over the target.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // The extension is kept so that writers that pick the format from it still do.
    let tmp = path.with_file_name(format!(".tmp-{name}"));
    write(&tmp)?;
    File::open(&tmp).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn tensor_bytes(t: &Tensor) -> Result<(Vec<usize>, Vec<u8>)> {
    let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let data = Vec::<f32>::try_from(t.flatten(0, -1))?;
    Ok((shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()))
}

/// Saves network, optimizer and loop state of run `run_id` to `path` atomically.
pub fn save(path: &Path, run_id: &str, net: &Net, adam: &Adam, state: &TrainState) -> Result<()> {
    let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in net.tensors() {
        let (shape, bytes) = tensor_bytes(t)?;
        entries.push((format!("net/{name}"), shape, bytes));
    }
    for (prefix, moments) in [("adam.m", &adam.m), ("adam.v", &adam.v)] {
        for (name, t) in moments {
            let (shape, bytes) = tensor_bytes(t)?;
            entries.push((format!("{prefix}/{name}"), shape, bytes));
        }
    }
    let state_json = serde_json::to_string(&(state, adam.t))?;
    let mut borrowed: Vec<(&str, &[usize], &[u8])> = entries.iter().map(|(n, s, b)| (n.as_str(), s.as_slice(), b.as_slice())).collect();
    let sum = checksum(&state_json, run_id, &mut borrowed);
    let views = entries
        .iter()
        .map(|(name, shape, bytes)| Ok((name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([(STATE_KEY.to_string(), state_json), (RUN_ID_KEY.to_string(), run_id.to_string()), (CHECKSUM_KEY.to_string(), sum)]);
    let bytes = safetensors::serialize(views, Some(metadata))?;
    write_atomic(path, |tmp| std::fs::write(tmp, &bytes).with_context(|| format!("writing checkpoint {}", tmp.display())))
}

/// A checkpoint read back: the tensors by name and the loop state.
pub struct Checkpoint {
    tensors: HashMap<String, Tensor>,
    pub state: TrainState,
    pub adam_t: u64,
    /// The id of the run that wrote it (none in checkpoints older than run ids).
    pub run_id: Option<String>,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).with_context(|| format!("{} is not a safetensors file", path.display()))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let state_json = metadata
            .get(STATE_KEY)
            .with_context(|| format!("{} has no training state: it was not written by `advlens train`", path.display()))?;
        let (state, adam_t): (TrainState, u64) =
            serde_json::from_str(state_json).with_context(|| format!("reading the training state of {}", path.display()))?;
        let run_id = metadata.get(RUN_ID_KEY).cloned();
        let file = SafeTensors::deserialize(&bytes).with_context(|| format!("reading tensors of {}", path.display()))?;
        let mut tensors = HashMap::new();
        let views = file.tensors();
        for (name, view) in &views {
            if view.dtype() != Dtype::F32 {
                bail!("{}: tensor `{name}` is {:?}, expected F32", path.display(), view.dtype());
            }
            let data: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                bail!("{}: tensor `{name}` holds {} at index {i}: the weights diverged or the file is damaged", path.display(), data[i]);
            }
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            tensors.insert(name.clone(), Tensor::from_slice(&data).view(shape.as_slice()));
        }
        // Checkpoints written before checksums have none: they are read as they are.
        if let Some(expected) = metadata.get(CHECKSUM_KEY) {
            let mut entries: Vec<(&str, &[usize], &[u8])> = views.iter().map(|(n, v)| (n.as_str(), v.shape(), v.data())).collect();
            if checksum(state_json, run_id.as_deref().unwrap_or(""), &mut entries) != *expected {
                bail!(
                    "{} is damaged: its checksum does not match its contents (a bit flipped, or it was edited after it was written); \
                     resume from an intact copy, or start the run again",
                    path.display()
                );
            }
        }
        Ok(Self { tensors, state, adam_t, run_id })
    }

    /// Copies the network tensors into `net`.
    pub fn load_net(&self, net: &Net) -> Result<()> {
        for (name, param) in net.tensors() {
            let value = self.tensors.get(&format!("net/{name}")).with_context(|| format!("the checkpoint has no tensor `{name}`: was it written for another architecture?"))?;
            if value.size() != param.size() {
                bail!("checkpoint tensor `{name}` has shape {:?}, the network expects {:?}", value.size(), param.size());
            }
            let mut param = param.shallow_clone();
            tch::no_grad(|| param.f_copy_(value))?;
        }
        Ok(())
    }

    /// Restores the optimizer's moments and step count.
    pub fn load_adam(&self, adam: &mut Adam) -> Result<()> {
        adam.t = self.adam_t;
        for (prefix, moments) in [("adam.m", &mut adam.m), ("adam.v", &mut adam.v)] {
            for (name, t) in moments.iter_mut() {
                let value = self.tensors.get(&format!("{prefix}/{name}")).with_context(|| format!("the checkpoint has no optimizer state `{prefix}/{name}`"))?;
                tch::no_grad(|| t.f_copy_(value))?;
            }
        }
        Ok(())
    }
}
