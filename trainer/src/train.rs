//! Standard training on libtorch. (Adversarial and consistent-loss modes come later.)

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use crate::arch;
use crate::checkpoint::{save_weights, write_atomic, RunDir};
use crate::data::{Dataset, DatasetKind, Split};
use crate::net::{images_tensor, Net};
use advlens_shared::model::InputSpec;

/// Everything that defines a training run; saved as `config.json` in the run directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub dataset: String,
    pub data_dir: PathBuf,
    pub arch: String,
    pub name: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Train on the first `limit` training images only.
    pub limit: Option<usize>,
    pub out_dir: PathBuf,
}

/// What a finished (or interrupted) run reached.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    pub epochs_done: usize,
    pub train_loss: f64,
    pub test_accuracy: f64,
    pub interrupted: bool,
}

/// Trains `config` on `device`, writing the run directory as it goes.
/// `stop` is polled between steps (Ctrl-C): the run then saves a checkpoint and returns.
pub fn train(config: &TrainConfig, device: Device, stop: Arc<AtomicBool>, quiet: bool) -> Result<TrainSummary> {
    let kind = DatasetKind::parse(&config.dataset)?;
    let train = Dataset::load(kind, &config.data_dir, Split::Train)?;
    let test = Dataset::load(kind, &config.data_dir, Split::Test)?;
    let (mean, std) = kind.normalization();
    let [c, h, w] = train.shape;
    let input = InputSpec { channels: c, height: h, width: w, mean, std };
    let mut spec = arch::build(&config.arch, &config.name, input, kind.classes())?;
    spec.provenance.dataset = Some(kind.name().into());
    spec.provenance.training_mode = Some("standard".into());

    let run = RunDir::new(&config.out_dir);
    std::fs::create_dir_all(&run.root).with_context(|| format!("creating run directory {}", run.root.display()))?;
    write_atomic(&run.config(), |p| Ok(std::fs::write(p, pretty_json(config))?))?;
    write_atomic(&run.model(), |p| Ok(std::fs::write(p, pretty_json(&spec))?))?;

    tch::manual_seed(config.seed as i64);
    let vs = nn::VarStore::new(device);
    let net = Net::new(&vs.root(), &spec);
    let mut opt = nn::Adam::default().build(&vs, config.learning_rate)?;

    let n = config.limit.map_or(train.len(), |l| l.min(train.len()));
    let images = images_tensor(&train.images[..n * c * h * w], train.shape, device);
    let labels = Tensor::from_slice(&train.labels[..n]).to_kind(Kind::Int64).to_device(device);
    let test_images = images_tensor(&test.images, test.shape, device);
    let test_labels = Tensor::from_slice(&test.labels).to_kind(Kind::Int64).to_device(device);

    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.metrics())
        .with_context(|| format!("opening {}", run.metrics().display()))?;
    let steps_per_epoch = n.div_ceil(config.batch_size);
    let mut summary = TrainSummary { epochs_done: 0, train_loss: f64::NAN, test_accuracy: f64::NAN, interrupted: false };
    for epoch in 1..=config.epochs {
        let bar = progress_bar(steps_per_epoch as u64, quiet, &format!("epoch {epoch}/{}", config.epochs));
        let start = Instant::now();
        let order = Tensor::randperm(n as i64, (Kind::Int64, device));
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0usize);
        for step in 0..steps_per_epoch {
            if stop.load(Ordering::Relaxed) {
                save_weights(&vs, &run.checkpoint())?;
                summary.interrupted = true;
                bar.abandon_with_message("interrupted: checkpoint saved");
                return Ok(summary);
            }
            let idx = order.narrow(0, (step * config.batch_size) as i64, config.batch_size.min(n - step * config.batch_size) as i64);
            let x = images.index_select(0, &idx);
            let y = labels.index_select(0, &idx);
            let logits = net.forward_t(&x, true);
            let loss = logits.cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            let b = idx.size()[0] as usize;
            loss_sum += loss.double_value(&[]) * b as f64;
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
            seen += b;
            bar.inc(1);
            if step % 20 == 0 {
                let rate = seen as f64 / start.elapsed().as_secs_f64();
                bar.set_message(format!("loss {:.4} acc {:.2}% {rate:.0} img/s", loss_sum / seen as f64, 100.0 * correct as f64 / seen as f64));
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let test_accuracy = tch::no_grad(|| accuracy(&net, &test_images, &test_labels));
        summary = TrainSummary { epochs_done: epoch, train_loss: loss_sum / seen as f64, test_accuracy, interrupted: false };
        bar.finish_with_message(format!(
            "loss {:.4} train acc {:.2}% test acc {:.2}% ({:.0} img/s)",
            summary.train_loss,
            100.0 * correct as f64 / seen as f64,
            100.0 * test_accuracy,
            seen as f64 / seconds
        ));
        let line = serde_json::json!({
            "epoch": epoch, "train_loss": summary.train_loss,
            "train_accuracy": correct as f64 / seen as f64, "test_accuracy": test_accuracy,
            "seconds": seconds, "images_per_second": seen as f64 / seconds,
        });
        writeln!(metrics, "{line}").with_context(|| format!("writing {}", run.metrics().display()))?;
        save_weights(&vs, &run.checkpoint())?;
    }
    Ok(summary)
}

/// Top-1 accuracy of `net` on `images`, in batches of 1000.
pub fn accuracy(net: &Net, images: &Tensor, labels: &Tensor) -> f64 {
    let n = images.size()[0];
    let mut correct = 0i64;
    for start in (0..n).step_by(1000) {
        let len = (n - start).min(1000);
        let logits = net.forward(&images.narrow(0, start, len));
        correct += logits.argmax(-1, false).eq_tensor(&labels.narrow(0, start, len)).sum(Kind::Int64).int64_value(&[]);
    }
    correct as f64 / n as f64
}

fn progress_bar(len: u64, quiet: bool, prefix: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} eta {eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Pretty JSON with a final newline.
pub fn pretty_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("plain data serialises") + "\n"
}
