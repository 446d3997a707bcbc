//! The training loop: any [`Mode`], any architecture, resumable.
//!
//! Determinism: batch order and augmentation come from (seed, epoch, step) and libtorch's
//! generator is reseeded from (seed, step) before every step, so on the CPU a run that is killed
//! and resumed from its last checkpoint ends with the same weights as one that never stopped.

mod curves;
mod run_files;
mod step;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::arch;
use crate::checkpoint::{self, RunDir, TrainState};
use crate::data::batches::{train_val_split, Augment, EpochPlan, SplitMix};
use crate::data::{Dataset, DatasetKind, Split};
use crate::dist::{self, Team};
use crate::mode::Mode;
use crate::net::{images_tensor, Net};
use crate::optim::Adam;
use crate::precision::Precision;
use run_files::{open_run, truncate_metrics};
pub use run_files::{pretty_json, read_metrics};
use step::{take_step, StepTotals};
use advlens_shared::model::InputSpec;

/// Everything that defines a training run; saved as `config.json` in the run directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub dataset: String,
    pub data_dir: PathBuf,
    pub arch: String,
    /// Channels of the first convolution.
    pub width: usize,
    /// Fine-tuning: the bundle whose graph and weights the run starts from (instead of `arch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    pub name: String,
    pub mode: Mode,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// `constant`, or `cosine`: decays the rate to 0 over the run, by step.
    #[serde(default = "constant_schedule")]
    pub lr_schedule: String,
    pub seed: u64,
    /// Train on the first `limit` training images only.
    pub limit: Option<usize>,
    /// Fraction of the training images held out for validation (and for picking `best`).
    pub val_fraction: f64,
    /// Random crop + flip (CIFAR-10 style).
    pub augment: bool,
    /// Also write `last.safetensors` every this many steps (0: only at epoch ends).
    pub checkpoint_every: usize,
    /// Epochs over which adversarial modes grow epsilon from 0 (0: full epsilon from the start).
    #[serde(default)]
    pub epsilon_warmup: f64,
    /// The type the network's products run in (bf16: mixed precision; runs saved before it
    /// existed: f32).
    #[serde(default)]
    pub precision: Precision,
    /// Where the run was created. `--resume --out DIR` continues the run in DIR, wherever it
    /// was created: a copied or moved run continues where it now is, never at this path.
    pub out_dir: PathBuf,
    /// The run's identity, also written into each of its checkpoints: a checkpoint from
    /// another run is refused on resume. Empty in runs made before ids existed.
    #[serde(default)]
    pub run_id: String,
}

fn constant_schedule() -> String {
    "constant".into()
}

/// The graph and weights a fine-tuning run starts from: `dir`'s bundle, renamed, with the
/// data's class names and its own input normalisation (the model was trained with it). When
/// the data has another number of classes, a final linear layer is resized and left out of the
/// weights, so that it starts fresh.
pub fn fine_tuning_start(
    dir: &std::path::Path,
    name: &str,
    data: &InputSpec,
    classes: &[String],
) -> Result<(advlens_shared::model::ModelSpec, std::collections::HashMap<String, advlens_shared::Tensor>)> {
    use advlens_shared::model::{Bundle, Op};
    let bundle = Bundle::load(dir).with_context(|| format!("loading --init bundle {}", dir.display()))?;
    let mut spec = bundle.spec().clone();
    let [c, h, w] = bundle.input_shape();
    if [c, h, w] != [data.channels, data.height, data.width] {
        bail!(
            "--init {} takes {c}x{h}x{w} images, the data has {}x{}x{}: fine-tune on data of the model's input size (or re-export the model for this size)",
            dir.display(),
            data.channels,
            data.height,
            data.width
        );
    }
    let mut weights: std::collections::HashMap<String, advlens_shared::Tensor> =
        spec.nodes.iter().flat_map(|n| n.op.weight_shapes(&n.name)).map(|(k, _)| (k.clone(), bundle.weight(&k).clone())).collect();
    if spec.classes.len() != classes.len() {
        let output = spec.output.clone();
        let head = spec.nodes.iter_mut().find(|n| n.name == output).expect("validated bundles have their output node");
        let Op::Linear { out_features, .. } = &mut head.op else {
            bail!(
                "--init {} has {} classes, the data {}, and its output `{output}` is not a linear layer that could be replaced",
                dir.display(),
                spec.classes.len(),
                classes.len()
            );
        };
        *out_features = classes.len();
        weights.retain(|k, _| !k.starts_with(&format!("{output}.")));
        eprintln!("fine-tuning: `{output}` replaced by a fresh linear layer for {} classes (the model had {})", classes.len(), spec.classes.len());
    }
    spec.name = name.into();
    spec.classes = classes.to_vec();
    // The measured numbers were the old model's; where it came from stays.
    let mut extra = std::mem::take(&mut spec.provenance.extra);
    extra.insert("fine_tuned_from".into(), serde_json::json!(bundle.spec().name));
    spec.provenance = advlens_shared::model::Provenance { extra, ..Default::default() };
    advlens_shared::model::check_spec(&spec)?;
    Ok((spec, weights))
}

/// The learning rate at `step` of `total` steps.
pub fn scheduled_lr(base: f64, schedule: &str, step: u64, total: u64) -> f64 {
    match schedule {
        "cosine" => base * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total.max(1) as f64).cos()),
        _ => base,
    }
}

/// The share of epsilon used at `step` when it grows linearly over `warmup_epochs` epochs of
/// `steps_per_epoch` steps; 1 after the warm-up (and without one).
pub fn warmup_fraction(step: u64, steps_per_epoch: usize, warmup_epochs: f64) -> f64 {
    let total = warmup_epochs * steps_per_epoch as f64;
    if total <= 0.0 {
        1.0
    } else {
        ((step + 1) as f64 / total).min(1.0)
    }
}

/// What a finished (or interrupted) run reached.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    pub epochs_done: usize,
    pub train_loss: f64,
    pub val_accuracy: Option<f64>,
    pub test_accuracy: f64,
    pub best_epoch: Option<usize>,
    pub interrupted: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    /// Accuracy on the images the loss was computed on (adversarial ones in `pgd` mode).
    pub train_accuracy: f64,
    pub val_accuracy: Option<f64>,
    pub test_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Trains `config` on `device`, writing the run directory as it goes; `resume` continues from
/// its `last.safetensors`. `stop` is polled between steps (Ctrl-C): the run then saves and returns.
///
/// With a `team`, this process is one rank of a data-parallel job: every rank runs this with
/// rank 0's config; each global batch is split across the ranks and their gradients averaged,
/// so the weights follow the single-process run with the same batch size (exactly, up to the
/// order of floating-point sums, for networks without batch norm). Only rank 0 reads and writes
/// the run directory.
pub fn train(config: &TrainConfig, device: Device, resume: bool, stop: Arc<AtomicBool>, quiet: bool, team: Option<&Team>) -> Result<TrainSummary> {
    let agree = |local: Result<()>| match team {
        Some(t) => t.agree(local),
        None => local,
    };
    let is_main = team.is_none_or(Team::is_main);
    let quiet = quiet || !is_main;
    let kind = DatasetKind::parse(&config.dataset)?;
    let loaded = (|| -> Result<_> {
        let train = Dataset::load(kind, &config.data_dir, Split::Train)?;
        let test = Dataset::load(kind, &config.data_dir, Split::Test)?;
        if train.classes.len() < 2 {
            bail!("{} has {} class ({:?}): a classifier needs at least 2", config.data_dir.display(), train.classes.len(), train.classes);
        }
        // The test split is read by the model built for the training split: refuse a mismatch
        // now, not after an epoch of training.
        test.check_fits(&config.data_dir, &config.name, train.shape, &train.classes)?;
        Ok((train, test))
    })();
    let (train, test) = match team {
        Some(t) => t.agree(loaded)?,
        None => loaded?,
    };
    let train = Arc::new(train);
    if let Some(t) = team {
        t.check_same("training data", train.fingerprint() ^ test.fingerprint().rotate_left(1))?;
    }
    let (mean, std) = if kind == DatasetKind::Folder { train.channel_stats() } else { kind.normalization() };
    let [c, h, w] = train.shape;
    let input = InputSpec { channels: c, height: h, width: w, mean, std };
    let run = RunDir::new(&config.out_dir);
    let (mut spec, init_weights) = match &config.init {
        // A resumed run reads its graph back: the bundle it started from may have moved.
        Some(_) if resume && team.is_some() => bail!("--distributed cannot yet resume a fine-tuning (--init) run: resume it in one process"),
        Some(_) if resume => {
            let text = std::fs::read(run.model()).with_context(|| format!("reading {}", run.model().display()))?;
            (advlens_shared::model::parse_spec(&text)?, None)
        }
        Some(dir) => {
            let (spec, weights) = fine_tuning_start(dir, &config.name, &input, &train.classes)?;
            (spec, Some(weights))
        }
        None => (arch::build(&config.arch, &config.name, input, train.classes.clone(), config.width)?, None),
    };
    spec.hierarchy = kind.hierarchy();
    spec.provenance.dataset = Some(kind.name().into());
    spec.provenance.training_mode = Some(config.mode.name().into());
    spec.provenance.epsilon = config.mode.attack().map(|a| a.epsilon);
    if let Mode::Consistent { lambda, .. } = &config.mode {
        spec.provenance.lambda = Some(*lambda);
    }

    if let Some(t) = team {
        t.check_same("model", dist::fingerprint(pretty_json(&spec).as_bytes()))?;
    }
    // Only rank 0 touches the run directory; the other ranks get its checkpoint by broadcast.
    let opened = if is_main { open_run(config, &run, &spec, resume) } else { Ok(None) };
    let resumed = match team {
        Some(t) => t.agree(opened)?,
        None => opened?,
    };

    tch::manual_seed(config.seed as i64);
    let vs = nn::VarStore::new(device);
    let mut net = Net::new(&vs.root(), &spec).with_precision(config.precision);
    if let Some(weights) = &init_weights {
        net.load_some_weights(weights).context("loading the --init bundle's weights")?;
    }
    config.mode.check(&net)?;
    let mut adam = Adam::new(&net, config.learning_rate);
    let mut state = TrainState::default();
    let restored = (|| -> Result<()> {
        if let Some(ckpt) = resumed {
            ckpt.load_net(&net)?;
            ckpt.load_adam(&mut adam)?;
            state = ckpt.state;
            truncate_metrics(&run, state.epoch)?;
            eprintln!("resuming {} at epoch {}, step {}", run.root.display(), state.epoch + 1, state.step);
        }
        Ok(())
    })();
    agree(restored)?;
    if let Some(t) = team {
        // Every rank starts from rank 0's weights, moments and loop position.
        t.broadcast_net(&net, &adam)?;
        let text = t.broadcast_text(&serde_json::to_string(&(&state, adam.t))?, 1 << 16)?;
        (state, adam.t) = serde_json::from_str(&text).context("reading rank 0's training state")?;
    }

    let n = config.limit.map_or(train.len(), |l| l.min(train.len()));
    let (train_idx, val_idx) = train_val_split(n, config.val_fraction, config.seed);
    if train_idx.is_empty() {
        bail!("no training images left after holding out {:.0}% for validation", 100.0 * config.val_fraction);
    }
    let plan = EpochPlan {
        indices: Arc::new(train_idx),
        batch_size: config.batch_size,
        seed: config.seed,
        augment: if config.augment { Augment::CropFlip { pad: 4 } } else { Augment::None },
    };
    // Each rank evaluates its share of the validation and test images; the counts are summed.
    let share = |n: usize| team.map_or(0..n, |t| t.rows(n));
    let val = (!val_idx.is_empty()).then(|| {
        let mine = &val_idx[share(val_idx.len())];
        let pixels: Vec<u8> = mine.iter().flat_map(|&i| train.image(i).iter().copied()).collect();
        let labels: Vec<i64> = mine.iter().map(|&i| i64::from(train.labels[i])).collect();
        (images_tensor(&pixels, train.shape, device), Tensor::from_slice(&labels).to_device(device))
    });
    let image_len: usize = test.shape.iter().product();
    let mine = share(test.len());
    let test_images = images_tensor(&test.images[mine.start * image_len..mine.end * image_len], test.shape, device);
    let test_labels = Tensor::from_slice(&test.labels[mine].iter().map(|&l| i64::from(l)).collect::<Vec<_>>()).to_device(device);
    let shared_accuracy = |images: &Tensor, labels: &Tensor| -> Result<f64> {
        let mut counts = [tch::no_grad(|| correct_count(&net, images, labels)) as f64, images.size()[0] as f64];
        if let Some(t) = team {
            t.sum(&mut counts)?;
        }
        Ok(counts[0] / counts[1].max(1.0))
    };

    let mut metrics = if is_main {
        Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(run.metrics())
                .with_context(|| format!("opening {}", run.metrics().display()))?,
        )
    } else {
        None
    };
    let save = |path: &std::path::Path, net: &Net, adam: &Adam, state: &TrainState| -> Result<()> {
        if is_main {
            checkpoint::save(path, &config.run_id, net, adam, state)?;
        }
        Ok(())
    };
    // The Ctrl-C flag of any rank, learned through the previous step's collective.
    let mut team_stop = false;
    let steps = plan.steps();
    let mut summary = TrainSummary {
        epochs_done: state.epoch,
        train_loss: f64::NAN,
        val_accuracy: None,
        test_accuracy: f64::NAN,
        best_epoch: state.best_epoch,
        interrupted: false,
    };
    for epoch in state.epoch + 1..=config.epochs {
        let bar = progress_bar(steps as u64, quiet, &format!("{} epoch {epoch}/{}", config.mode.name(), config.epochs));
        bar.set_position(state.step as u64);
        let start = Instant::now();
        let seconds_before = state.seconds;
        let first_step = state.step;
        for (k, batch) in plan.spawn(train.clone(), epoch, first_step).into_iter().enumerate() {
            if if team.is_some() { team_stop } else { stop.load(Ordering::Relaxed) } {
                state.seconds = seconds_before + start.elapsed().as_secs_f64();
                save(&run.last(), &net, &adam, &state)?;
                summary.interrupted = true;
                bar.abandon_with_message("interrupted: checkpoint saved, continue with --resume");
                return Ok(summary);
            }
            tch::manual_seed(SplitMix::derive(config.seed, 7, state.global_step).next_u64() as i64 & i64::MAX);
            adam.lr = scheduled_lr(config.learning_rate, &config.lr_schedule, state.global_step, (steps * config.epochs) as u64);
            let warm = warmup_fraction(state.global_step, steps, config.epsilon_warmup);
            let mode = if warm < 1.0 { config.mode.scaled_epsilon(warm) } else { config.mode.clone() };
            let StepTotals { loss_sum, correct, stop_votes } =
                take_step(&net, &mut adam, &mode, &batch, train.shape, device, team, &stop, config.batch_size)?;
            team_stop = stop_votes > 0.0;
            let loss = loss_sum / batch.len.max(1) as f64;
            if !loss.is_finite() {
                bail!("the loss became {loss} at epoch {epoch}, step {}: lower --lr (now {})", first_step + k, config.learning_rate);
            }
            state.loss_sum += loss_sum;
            state.correct += correct as i64;
            state.seen += batch.len;
            state.step = first_step + k + 1;
            state.global_step += 1;
            bar.inc(1);
            if k % 10 == 0 || state.step == steps {
                let rate = (state.seen as f64) / (seconds_before + start.elapsed().as_secs_f64()).max(1e-9);
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}% {rate:.0} img/s",
                    state.loss_sum / state.seen as f64,
                    100.0 * state.correct as f64 / state.seen as f64
                ));
            }
            if config.checkpoint_every > 0 && state.global_step % config.checkpoint_every as u64 == 0 && state.step < steps {
                state.seconds = seconds_before + start.elapsed().as_secs_f64();
                save(&run.last(), &net, &adam, &state)?;
            }
        }
        let seconds = seconds_before + start.elapsed().as_secs_f64();
        let val_accuracy = val.as_ref().map(|(x, y)| shared_accuracy(x, y)).transpose()?;
        let test_accuracy = shared_accuracy(&test_images, &test_labels)?;
        let line = EpochMetrics {
            epoch,
            train_loss: state.loss_sum / state.seen.max(1) as f64,
            train_accuracy: state.correct as f64 / state.seen.max(1) as f64,
            val_accuracy,
            test_accuracy,
            seconds,
            images_per_second: state.seen as f64 / seconds.max(1e-9),
        };
        bar.finish_with_message(format!(
            "loss {:.4} train acc {:.2}%{} test acc {:.2}% ({:.0} img/s)",
            line.train_loss,
            100.0 * line.train_accuracy,
            val_accuracy.map_or(String::new(), |v| format!(" val acc {:.2}%", 100.0 * v)),
            100.0 * test_accuracy,
            line.images_per_second
        ));
        // Model selection uses validation accuracy; without a validation split, the last epoch.
        let selection = val_accuracy.unwrap_or(epoch as f64);
        let improved = state.best_accuracy.is_none_or(|b| selection > b);
        state = TrainState {
            epoch,
            step: 0,
            global_step: state.global_step,
            best_accuracy: if improved { Some(selection) } else { state.best_accuracy },
            best_epoch: if improved { Some(epoch) } else { state.best_epoch },
            ..TrainState::default()
        };
        if improved {
            save(&run.best(), &net, &adam, &state)?;
        }
        save(&run.last(), &net, &adam, &state)?;
        if let Some(metrics) = metrics.as_mut() {
            writeln!(metrics, "{}", serde_json::to_string(&line)?).with_context(|| format!("writing {}", run.metrics().display()))?;
            let history = read_metrics(&run)?;
            curves::training_curves(&history, &run.curves()).with_context(|| format!("drawing {}", run.curves().display()))?;
        }
        summary = TrainSummary {
            epochs_done: epoch,
            train_loss: line.train_loss,
            val_accuracy,
            test_accuracy,
            best_epoch: state.best_epoch,
            interrupted: false,
        };
    }
    Ok(summary)
}


/// Top-1 accuracy of `net` on `images`, in batches of 500.
pub fn accuracy(net: &Net, images: &Tensor, labels: &Tensor) -> f64 {
    correct_count(net, images, labels) as f64 / images.size()[0].max(1) as f64
}

/// How many of `images` `net` classifies as `labels`, in batches of 500.
pub fn correct_count(net: &Net, images: &Tensor, labels: &Tensor) -> i64 {
    let n = images.size()[0];
    let mut correct = 0i64;
    for start in (0..n).step_by(500) {
        let len = (n - start).min(500);
        let logits = net.forward(&images.narrow(0, start, len));
        correct += logits.argmax(-1, false).eq_tensor(&labels.narrow(0, start, len)).sum(Kind::Int64).int64_value(&[]);
    }
    correct
}

pub fn progress_bar(len: u64, quiet: bool, prefix: &str) -> ProgressBar {
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

