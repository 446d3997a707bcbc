//! The files of a run directory that the training loop writes besides checkpoints:
//! `config.json`, `model.json`, `metrics.jsonl`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{EpochMetrics, TrainConfig};
use crate::checkpoint::{self, Checkpoint, RunDir};

/// Checks that `run` may be written (a new run needs an empty place, a resumed one its own
/// checkpoint), writes its config and model, and returns the checkpoint to resume from.
pub(super) fn open_run(config: &TrainConfig, run: &RunDir, spec: &advlens_shared::model::ModelSpec, resume: bool) -> Result<Option<Checkpoint>> {
    if !resume && run.last().exists() {
        bail!("{} already holds a run: continue it with `advlens train --resume --out {0}`, or pick another --out", run.root.display());
    }
    let resumed = if resume { Some(Checkpoint::read(&run.last())?) } else { None };
    if let Some(ckpt) = &resumed {
        match ckpt.run_id.as_deref() {
            Some(id) if !config.run_id.is_empty() && id != config.run_id => bail!(
                "{} was written by run {id}, but {} belongs to run {}: the files of two runs were mixed; copy the whole run directory, not single files",
                run.last().display(),
                run.config().display(),
                config.run_id
            ),
            _ => {}
        }
    }
    std::fs::create_dir_all(&run.root).with_context(|| format!("creating run directory {}", run.root.display()))?;
    write_atomic_json(&run.config(), config)?;
    write_atomic_json(&run.model(), spec)?;
    Ok(resumed)
}

/// The epoch lines of `metrics.jsonl`.
pub fn read_metrics(run: &RunDir) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(run.metrics()).with_context(|| format!("reading {}", run.metrics().display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad line in {}: {l}", run.metrics().display())))
        .collect()
}

/// Drops metric lines of epochs after `epochs_done` (written after the checkpoint a resumed run
/// starts from).
pub(super) fn truncate_metrics(run: &RunDir, epochs_done: usize) -> Result<()> {
    if !run.metrics().exists() {
        return Ok(());
    }
    let kept: Vec<EpochMetrics> = read_metrics(run)?.into_iter().filter(|m| m.epoch <= epochs_done).collect();
    let text: String = kept.iter().map(|m| serde_json::to_string(m).expect("plain data") + "\n").collect();
    checkpoint::write_atomic(&run.metrics(), |p| Ok(std::fs::write(p, text)?))
}

pub(super) fn write_atomic_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    checkpoint::write_atomic(path, |p| Ok(std::fs::write(p, pretty_json(value))?))
}

/// Pretty JSON with a final newline.
pub fn pretty_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("plain data serialises") + "\n"
}
