//! Run directories and atomic checkpoints.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tch::nn::VarStore;

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
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
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

/// Saves the weights of `vs` to `path` atomically (safetensors).
pub fn save_weights(vs: &VarStore, path: &Path) -> Result<()> {
    write_atomic(path, |tmp| vs.save(tmp).with_context(|| format!("writing checkpoint {}", tmp.display())))
}
