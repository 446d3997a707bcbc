//! Command-line arguments; converted to library configs at once.

use std::path::PathBuf;

use advlens_trainer::attack::{parse_kind, parse_norm, Attack, AttackKind, Norm};
use advlens_trainer::data::DatasetKind;
use advlens_trainer::mode::{Distance, Mode};
use advlens_trainer::precision::Precision;
use advlens_trainer::{arch, export::ExportConfig, params, train::TrainConfig};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

/// Train CNNs on libtorch and export them as advlens model bundles.
#[derive(Debug, Parser)]
#[command(name = "advlens", version, about, long_about = None)]
pub struct Cli {
    /// Print no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (standard, pgd, trades or consistent loss) into a run directory: config,
    /// graph, metrics.jsonl, curves.png, last and best checkpoints.
    Train(TrainArgs),
    /// Clean and robust accuracy (FGSM, PGD with restarts, least-likely), overall and per class.
    Eval(EvalArgs),
    /// Turn a run directory into a model bundle (model.json + weights.safetensors + samples.json).
    Export(ExportArgs),
    /// Adversarial versions of a dataset split: the paper's ensemble attack over several models
    /// (or one model's FGSM / PGD / least-likely attack), with transfer to held-out models.
    Attack(AttackArgs),
    /// The paper's measurements for one model and layer: consis on real and adversarial top
    /// images, CS1/CS2, representation ratio r, tracing ROC AUC, concept IoU (concept world).
    Analyze(AnalyzeArgs),
    /// The neurons behind one prediction: exact and gradient x activation influence of each
    /// channel of a layer, with the concepts `analyze` found for them; text and PNG.
    Trace(TraceArgs),
    /// Attack one image with the shared engine — the explorer's attacks, with its names, defaults
    /// and seeds: the page's `?attack=&eps=&steps=&target=&seed=` gives the same image.
    Perturb(PerturbArgs),
    /// Turn an ONNX model (exported by PyTorch, Keras, timm, ...) into a model bundle that every
    /// command and the explorer read. Unsupported ops are named with the node that uses them.
    Import(ImportArgs),
    /// Write a bundle folder as one file (its sample images included): what the explorer's
    /// "open your own model" takes.
    Pack(PackArgs),
    /// The whole paper pipeline: train 3 architectures x (standard, pgd, consistent), ensemble
    /// attacks, every analysis, on the dataset and on the concept world; writes report.md.
    Reproduce(ReproduceArgs),
    /// Rewrite a finished reproduction's report.md and figures from its results.json with the
    /// current rules and controls, without rerunning anything.
    Report(ReportArgs),
    /// Time training steps on random data (compare with tests/bench/train-step.sh).
    BenchStep(BenchStepArgs),
    /// List the known datasets, verify a copy, or write a PNG grid of its images.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// The datasets this build reads and the folder layout each expects.
    List,
    /// Load both splits, check the counts against the canonical ones, print per-class counts
    /// and a checksum. Exit code 1 when a count differs.
    Verify(DataArgs),
    /// Write a PNG grid with one row per class (rows in class order).
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// train or test.
        #[arg(long, default_value = "test")]
        split: String,
        /// Images per class.
        #[arg(long, default_value_t = 10)]
        per_class: usize,
        /// PNG file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Download a dataset from its canonical source with curl (or from --mirror, which may be a
    /// file:// URL) and check its counts and checksum. Says where else to get it when offline.
    Fetch {
        /// mnist, fashion-mnist or cifar10.
        name: String,
        /// Folder to download into (then pass it as --data).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Base URL holding the dataset's files, instead of the canonical mirrors.
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
    },
    /// Generate the concept world (objects built from parts, with per-pixel object, part,
    /// colour and texture masks) as an image folder for `--dataset folder`, or a preview grid.
    Concepts {
        /// Output folder (train/<class>/, test/<class>/, masks-*.bin.gz, vocab.json).
        #[arg(long, value_name = "DIR", required_unless_present = "preview")]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 20_000)]
        train: usize,
        #[arg(long, default_value_t = 2_000)]
        test: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Image side: 32 or 64.
        #[arg(long, default_value_t = 32)]
        side: usize,
        /// Also (or only) write a PNG grid of images and their part masks here.
        #[arg(long, value_name = "FILE")]
        preview: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// mnist, fashion-mnist, cifar10 or folder.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Dataset folder (see `advlens data list`).
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder (see `advlens data list`). With --resume: only when the data moved.
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR", required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// mnist, fashion-mnist, cifar10, or folder (train/<class>/ + test/<class>/ images, e.g.
    /// from `advlens data concepts`).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// small-cnn, alexnet, vgg or resnet (all fit 28x28 and 32x32 inputs).
    #[arg(long, default_value = "small-cnn")]
    pub arch: String,
    /// Channels of the first convolution (default: 32 for alexnet, 16 otherwise).
    #[arg(long)]
    pub width: Option<usize>,
    /// Model name written into the bundle (default: <dataset>-<arch>-<mode>).
    #[arg(long)]
    pub name: Option<String>,
    /// Fine-tune: start from this bundle's graph and weights (e.g. a model from `advlens
    /// import`) instead of --arch and --width. It keeps its own input normalisation; a final
    /// linear layer with another class count than the data's is replaced by a fresh one.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["arch", "width"])]
    pub init: Option<PathBuf>,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// constant, or cosine (decay to 0 over the run).
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// Seeds the initial weights, the batch order, augmentation and random attack starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only (quick runs and tests).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Fraction of the training images held out for validation; `best.safetensors` is the epoch
    /// with the best validation accuracy (0: no validation, best = last).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Random crop (4-pixel padding) and horizontal flip: on|off (default: on for cifar10 only).
    #[arg(long)]
    pub augment: Option<String>,
    /// Also checkpoint every N steps (0: only at the end of each epoch).
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub checkpoint_every: usize,
    /// Adversarial modes: grow epsilon (and the attack step) linearly from 0 to its value over
    /// the first E epochs (fractions allowed). Keeps short adversarial runs from collapsing to
    /// one class, the usual failure of PGD training from scratch at large epsilon.
    #[arg(long, default_value_t = 0.0, value_name = "E")]
    pub epsilon_warmup: f64,
    /// f32, or bf16: convolutions and dense layers in bfloat16 with f32 weights (mixed
    /// precision, as torch.autocast). Meant for GPUs with bf16 units (not yet measured there);
    /// on a CPU without AMX it was measured no faster than f32.
    #[arg(long, default_value = "f32", value_name = "TYPE")]
    pub precision: String,
    /// Run directory to write (with --resume: the run to continue).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint, with its saved configuration (the
    /// other training options are ignored; --epochs may raise the epoch count).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub dist: DistArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Running as one rank of a job launched by torchrun.
#[derive(Debug, Args)]
pub struct DistArgs {
    /// Run as one rank of a job launched by `torchrun --no-python advlens ...` (Gloo; see
    /// docs/distributed.md): the work is split across the ranks, rank 0 writes the results.
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed: seconds any rank waits for the others (at start and at each
    /// exchange) before giving up with an error.
    #[arg(long, default_value_t = 300, value_name = "S", requires = "distributed")]
    pub dist_timeout: u64,
}

impl DistArgs {
    /// Joins the job when --distributed is given.
    pub fn join(&self) -> Result<Option<advlens_trainer::dist::Team>> {
        use advlens_trainer::dist::{Launch, Team};
        if !self.distributed {
            return Ok(None);
        }
        Ok(Some(Team::join(&Launch::from_env()?, self.dist_timeout)?))
    }
}

/// How the model is trained.
#[derive(Debug, Args)]
pub struct ModeArgs {
    /// standard, pgd (Madry adversarial training), trades, or consistent (the paper's loss:
    /// CE on real and adversarial images + lambda * feature-map distance).
    #[arg(long, default_value = "standard")]
    pub mode: String,
    /// Perturbation budget on the [0,1] scale (default: mnist 0.3, fashion-mnist 0.1, cifar10 8/255).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Attack step size (default: mnist 0.01, fashion-mnist 0.01, cifar10 2/255).
    #[arg(long)]
    pub step_size: Option<f64>,
    /// Attack steps during training (default: mnist 40, fashion-mnist 20, cifar10 10).
    #[arg(long)]
    pub attack_steps: Option<usize>,
    /// Attack that makes the adversarial images of --mode consistent: fgsm, pgd, or ll
    /// (iterative least-likely class, targeted).
    #[arg(long, default_value = "pgd")]
    pub attack: String,
    /// Norm of the attack ball: linf or l2.
    #[arg(long, default_value = "linf")]
    pub norm: String,
    /// Weight of the feature-map distance in --mode consistent.
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// Layer whose output the consistent loss compares (default: the last convolutional block).
    #[arg(long)]
    pub feature_layer: Option<String>,
    /// The consistent loss's feature distance: mean (squared difference averaged over the
    /// features) or sum (the paper's squared norm, the mean times the feature size).
    #[arg(long, default_value = "mean")]
    pub distance: String,
    /// Weight of the KL term in --mode trades.
    #[arg(long, default_value_t = 6.0)]
    pub beta: f64,
}

impl ModeArgs {
    /// The training mode; the consistent loss compares `default_feature_layer` unless
    /// `--feature-layer` names another.
    pub fn into_mode(self, kind: DatasetKind, default_feature_layer: &str) -> Result<Mode> {
        let (eps, step, steps) = attack_defaults(kind);
        let norm = parse_norm(&self.norm)?;
        let epsilon = params::budget("--epsilon", self.epsilon.unwrap_or(eps), norm)?;
        let step_size = params::positive("--step-size", self.step_size.unwrap_or(step))?;
        let steps = params::count("--attack-steps", self.attack_steps.unwrap_or(steps))?;
        params::non_negative("--lambda", self.lambda)?;
        params::non_negative("--beta", self.beta)?;
        let pgd = Attack { kind: AttackKind::Pgd, norm, epsilon, step_size, steps, random_start: true };
        Ok(match self.mode.as_str() {
            "standard" => Mode::Standard,
            "pgd" | "adversarial" => Mode::Pgd { attack: pgd },
            "trades" => Mode::Trades { beta: self.beta, attack: Attack { norm: Norm::Linf, ..pgd } },
            "consistent" => {
                let kind = parse_kind(&self.attack)?;
                let attack = match kind {
                    AttackKind::Fgsm => Attack { kind, step_size: epsilon, steps: 1, random_start: false, ..pgd },
                    AttackKind::Pgd => pgd,
                    _ => Attack { kind, random_start: false, ..pgd },
                };
                let feature_layer = self.feature_layer.unwrap_or_else(|| default_feature_layer.into());
                Mode::Consistent { lambda: self.lambda, feature_layer, attack, distance: Distance::parse(&self.distance)? }
            }
            other => bail!("unknown mode `{other}`: use standard, pgd, trades or consistent"),
        })
    }
}

/// Default (epsilon, step size, steps) of adversarial training per dataset.
pub fn attack_defaults(kind: DatasetKind) -> (f64, f64, usize) {
    match kind {
        DatasetKind::Mnist => (kind.default_epsilon(), 0.01, 40),
        DatasetKind::FashionMnist => (kind.default_epsilon(), 0.01, 20),
        DatasetKind::Cifar10 | DatasetKind::Folder => (kind.default_epsilon(), 2.0 / 255.0, 10),
    }
}

#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads (1 keeps a shared 2-core machine responsive).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// How images, activations and convolution weights lie in memory: auto (channels-last on a
    /// CPU with one thread, where it is faster; contiguous otherwise), contiguous or
    /// channels-last. Only speed differs.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub memory_format: String,
}

impl DeviceArgs {
    /// The device, with libtorch's thread count and the networks' memory format set for the process.
    pub fn select(&self) -> Result<tch::Device> {
        use advlens_trainer::net::MemoryFormat;
        let format = MemoryFormat::parse(&self.memory_format)?;
        let device = crate::device::select(&self.device, self.threads)?;
        MemoryFormat::check(format, device, self.threads)?;
        MemoryFormat::choose(format);
        Ok(device)
    }
}

impl TrainArgs {
    pub fn into_config(self) -> Result<TrainConfig> {
        let kind = DatasetKind::parse(&self.dataset)?;
        // The architecture's name, or the bundle's for a fine-tuning run.
        let (init, arch_name, feature_layer) = match &self.init {
            Some(dir) => {
                let spec = advlens_shared::model::Bundle::load(dir).with_context(|| format!("loading --init bundle {}", dir.display()))?.spec().clone();
                let layer = advlens_shared::model::last_feature_activation(&spec)?.unwrap_or_default();
                (Some(std::path::absolute(dir)?), spec.name.clone(), layer)
            }
            None => (None, self.arch.clone(), arch::default_feature_layer(&self.arch).to_string()),
        };
        let mode = self.mode.into_mode(kind, &feature_layer)?;
        let augment = match self.augment.as_deref() {
            None => kind == DatasetKind::Cifar10,
            Some("on") => true,
            Some("off") => false,
            Some(other) => bail!("--augment takes on or off, not `{other}`"),
        };
        params::fraction("--val-fraction", self.val_fraction)?;
        params::non_negative("--epsilon-warmup", self.epsilon_warmup)?;
        params::positive("--lr", self.lr)?;
        params::count("--batch-size", self.batch_size)?;
        params::count("--epochs", self.epochs)?;
        if let Some(limit) = self.limit {
            params::count("--limit", limit)?;
        }
        Ok(TrainConfig {
            name: self.name.unwrap_or_else(|| format!("{}-{}-{}", kind.name(), arch_name, mode.name())),
            init,
            dataset: kind.name().into(),
            // Absolute, so that a resumed run finds the data from any working directory.
            data_dir: std::path::absolute(self.data.context("--data is required")?)?,
            run_id: advlens_trainer::checkpoint::new_run_id(),
            width: self.width.unwrap_or_else(|| arch::default_width(&self.arch)),
            arch: self.arch,
            mode,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            lr_schedule: match self.lr_schedule.as_str() {
                "constant" | "cosine" => self.lr_schedule,
                other => bail!("unknown --lr-schedule `{other}`: use constant or cosine"),
            },
            seed: self.seed,
            limit: self.limit,
            val_fraction: self.val_fraction,
            augment,
            checkpoint_every: self.checkpoint_every,
            epsilon_warmup: self.epsilon_warmup,
            precision: Precision::parse(&self.precision)?,
            out_dir: self.out,
        })
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory written by `advlens train` (its best checkpoint; eval.json is written there).
    #[arg(long, value_name = "DIR", conflicts_with = "bundle", required_unless_present = "bundle")]
    pub run: Option<PathBuf>,
    /// Or a model bundle directory.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Dataset folder.
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Attacks, comma separated: fgsm, ll (iterative least-likely), pgdN (N steps, random start).
    #[arg(long, default_value = "fgsm,pgd20,pgd100", value_delimiter = ',')]
    pub attacks: Vec<String>,
    /// Budget on the [0,1] scale (default: the model's training epsilon, else mnist 0.3,
    /// fashion-mnist 0.1, cifar10 8/255).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// linf or l2.
    #[arg(long, default_value = "linf")]
    pub norm: String,
    /// Random restarts of the PGD attacks.
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// Seed of the PGD attacks' random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate the first N test images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub dist: DistArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Args)]
pub struct AttackArgs {
    /// Model bundles to attack, comma separated (the ensemble; the first alone for single-model attacks).
    #[arg(long, value_delimiter = ',', required = true, value_name = "DIR,...")]
    pub models: Vec<PathBuf>,
    /// Bundles that only judge the result (transfer), comma separated.
    #[arg(long, value_delimiter = ',', value_name = "DIR,...")]
    pub held_out: Vec<PathBuf>,
    /// Dataset folder (the dataset is the first model's provenance.dataset).
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// train or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Attack the first N images of the split.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// ensemble (Liu et al., targeted, Adam), fgsm, pgd or ll.
    #[arg(long, default_value = "ensemble")]
    pub attack: String,
    /// Targets: random (a seeded class other than the label), ll (least likely for the first
    /// model) or none (untargeted; not for ensemble).
    #[arg(long, default_value = "random")]
    pub target: String,
    /// Budget: the L-inf box of the ensemble attack and the ball of the others (default: the
    /// dataset's, mnist 0.3, fashion-mnist 0.1, cifar10 8/255).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Ensemble attack without a box (only [0,1] and the distance penalty bound it).
    #[arg(long)]
    pub no_box: bool,
    /// Steps (ensemble: Adam steps; pgd/ll: gradient steps).
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Adam learning rate of the ensemble attack (pixel units).
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Weight of the ensemble attack's distance penalty mean((x*-x)^2).
    #[arg(long, default_value_t = 0.0)]
    pub lambda: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 200)]
    pub batch_size: usize,
    /// Output folder (images.safetensors + meta.json).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub dist: DistArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Model bundle.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Adversarial set written by `advlens attack` (same dataset and split).
    #[arg(long, value_name = "DIR")]
    pub adv: PathBuf,
    /// Dataset folder.
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Layer to analyse (default: the last ReLU with feature maps).
    #[arg(long)]
    pub layer: Option<String>,
    /// Real images: the first N of the split (at least the adversarial set's).
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// Top images per neuron.
    #[arg(long, default_value_t = 20)]
    pub top_k: usize,
    /// Top traced neurons per image for the disagreement score.
    #[arg(long, default_value_t = 5)]
    pub trace_top: usize,
    /// Also write the neuron atlas for the explorer (atlas/atlas.json and the sprite sheets
    /// real.png, adversarial.png, JPEG `.jpg` for colour models:
    /// every neuron's top real and adversarial receptive-field patches, scores and concept).
    #[arg(long)]
    pub atlas: bool,
    /// Output folder (analysis.json, analysis.md, atlas/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub dist: DistArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Model bundle.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    #[command(flatten)]
    pub input: OneImageArgs,
    /// Class to explain (default: the predicted one).
    #[arg(long)]
    pub class: Option<usize>,
    /// Layer (default: the last ReLU with feature maps).
    #[arg(long)]
    pub layer: Option<String>,
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// An `advlens analyze` output folder for this model: adds each neuron's class and concept,
    /// and, from its atlas/ (or the bundle's atlas/), the classes of its top real and adversarial
    /// images. Sets the default --layer to the analysed one.
    #[arg(long, value_name = "DIR")]
    pub analysis: Option<PathBuf>,
    /// Write the image and the top neurons' activation maps here; with an atlas, each map has its
    /// neuron's top 9 real patches under it and, below a red bar, its top 9 adversarial patches.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Print JSON instead of text: the prediction, the layer, the explained class and every
    /// neuron's influence (the numbers the explorer shows).
    #[arg(long)]
    pub json: bool,
}

/// One image for a command on one model.
#[derive(Debug, Args)]
pub struct OneImageArgs {
    /// Image file (PNG/JPEG; resized on its shorter side and centre-cropped to the model input).
    #[arg(long, value_name = "FILE", conflicts_with = "sample", required_unless_present = "sample")]
    pub image: Option<PathBuf>,
    /// Or the N-th sample image of the bundle's samples.json.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
}

#[derive(Debug, Args)]
pub struct PerturbArgs {
    /// Model bundle.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    #[command(flatten)]
    pub input: OneImageArgs,
    /// pgd, pgd-l2, fgsm, least-likely, mi-fgsm or ensemble (the paper's: Adam on --model and
    /// the --with models at once, aimed at --target, else at --model's least likely class).
    #[arg(long, default_value = "pgd")]
    pub attack: String,
    /// With --attack ensemble: bundles attacked together with --model (same input and classes).
    #[arg(long = "with", value_delimiter = ',', value_name = "DIR,...")]
    pub with: Vec<PathBuf>,
    /// Budget (L-inf: per pixel on the [0,1] scale; pgd-l2: the L2 norm of the change; ensemble:
    /// the L-inf box). Default: the model's training epsilon, else the one it was evaluated at, else 0.2.
    #[arg(long)]
    pub epsilon: Option<f32>,
    #[arg(long, default_value_t = advlens_shared::attack::DEFAULT_STEPS)]
    pub steps: usize,
    /// Step size (default: 2.5 epsilon / steps; mi-fgsm epsilon / steps; fgsm epsilon; ensemble:
    /// Adam's learning rate, 0.01). Give it to reproduce the first steps of a longer attack: step
    /// k of N is --steps k with N's step size.
    #[arg(long)]
    pub step_size: Option<f32>,
    /// Aim at this class (pgd, pgd-l2, mi-fgsm, ensemble).
    #[arg(long)]
    pub target: Option<usize>,
    /// Start at a random point of the ball drawn with this seed (default: at the image; not for
    /// ensemble).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The true class (default: the sample's label, else the predicted class).
    #[arg(long)]
    pub label: Option<usize>,
    /// Print JSON: the attack, probabilities before and after, the adversarial image (CHW, [0,1]).
    #[arg(long)]
    pub json: bool,
    /// With --json: also the image after every step.
    #[arg(long)]
    pub every_step: bool,
    /// Bundles that only judge the adversarial image (transfer): their predictions on it.
    #[arg(long, value_delimiter = ',', value_name = "DIR,...")]
    pub held_out: Vec<PathBuf>,
    /// Write the adversarial image here (PNG, 8 bits: rounded).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The .onnx file (weights inside it, not in a separate .data file).
    #[arg(value_name = "FILE")]
    pub onnx: PathBuf,
    /// Bundle folder to write (replaced as a whole if it holds a bundle).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A text file with one class name per line, in the order of the model's outputs, or
    /// `imagenet` for ImageNet's 1000 classes (torchvision's names; default: class 0, class 1, ...).
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    /// Per-channel mean that turns [0, 1] pixels into the model's input, comma-separated
    /// (torchvision / timm ImageNet models: 0.485,0.456,0.406). A normalisation inside the
    /// graph is folded in as well.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub mean: Vec<f32>,
    /// Per-channel std, comma-separated (ImageNet: 0.229,0.224,0.225).
    #[arg(long, value_delimiter = ',')]
    pub std: Vec<f32>,
    /// The dataset the model was trained on (mnist, fashion-mnist, cifar10, folder): recorded so
    /// that eval, attack and analyze find its data.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Model name (default: the file name without .onnx).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Model bundle folder (model.json, weights.safetensors, optional samples.json).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The single file to write (by convention `<name>.advlens.safetensors`); a name ending in
    /// `.onnx` writes the model as ONNX instead (opset 17, class names in its metadata), for
    /// onnxruntime, netron and other tools.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// quick (a 2-core CPU, ~30 minutes), standard (CIFAR-10 or Fashion-MNIST at a larger scale,
    /// about 100 minutes on 2 cores) or full (one GPU); smoke tests the pipeline in minutes.
    #[arg(long, default_value = "quick")]
    pub preset: String,
    /// mnist, fashion-mnist or cifar10.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Output folder (runs, models, adversarial sets, analyses, report.md); rerun to continue.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// libtorch intra-op threads of each step.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Steps to run at once (each a separate process with --threads threads). Trainings,
    /// attacks and analyses of different models are independent.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Seed of the first replicate (weights, batch order, augmentation, attacks); replicate r
    /// uses seed + r.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Times to run the pipeline with different seeds (each in OUT/seed-<s>/ when more than
    /// one); the verdicts' intervals then cover training noise too.
    #[arg(long, default_value_t = 1)]
    pub replicates: usize,
    /// Also train claim 3's controls on the dataset: the consistent loss with lambda 0
    /// (adversarial cross-entropy alone), 0.1 and 10, with the paper's squared norm (summed over
    /// the features), and with targeted x* (least likely class): five more trainings per
    /// architecture.
    #[arg(long)]
    pub controls: bool,
    /// Leave out the concept world (and its concept detectors): the claims are decided on the
    /// dataset, and the concept world is most of the quick preset's time, so control studies
    /// run faster without it.
    #[arg(long)]
    pub dataset_only: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results.json a reproduction wrote; report.md and the figures are written beside it.
    #[arg(long, value_name = "FILE")]
    pub results: PathBuf,
    /// The preset it ran (named in the report's first line).
    #[arg(long, default_value = "quick")]
    pub preset: String,
    /// The dataset whose claims the report decides (mnist, fashion-mnist or cifar10).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
}

#[derive(Debug, Args)]
pub struct BenchStepArgs {
    /// Input shape and classes of this dataset (no data is read: images are random).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    #[arg(long, default_value = "small-cnn")]
    pub arch: String,
    #[arg(long)]
    pub width: Option<usize>,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Write the graph (model.json) here, for the PyTorch peer script.
    #[arg(long, value_name = "FILE")]
    pub write_spec: Option<PathBuf>,
    /// f32 or bf16 (as `train --precision`).
    #[arg(long, default_value = "f32", value_name = "TYPE")]
    pub precision: String,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run directory written by `advlens train`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Dataset folder, for the test accuracy and the sample images (optional).
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// How many test images to ship as samples.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Which checkpoint: best (best validation accuracy) or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Bundle directory to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the bundle as an ONNX file (opset 17) here.
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
    /// Where the test-set accuracy pass runs (the samples' reference outputs are always
    /// computed on the CPU, where the shared engines are compared with them).
    #[command(flatten)]
    pub device: DeviceArgs,
}

impl EvalArgs {
    /// Checks the numbers before any model or data is read.
    pub fn check(&self) -> Result<()> {
        if let Some(e) = self.epsilon {
            params::budget("--epsilon", e, parse_norm(&self.norm)?)?;
        }
        params::count("--restarts", self.restarts)?;
        params::count("--batch-size", self.batch_size)?;
        if let Some(limit) = self.limit {
            params::count("--limit", limit)?;
        }
        Ok(())
    }
}

impl AttackArgs {
    /// Checks the numbers before any model or data is read.
    pub fn check(&self) -> Result<()> {
        if let Some(e) = self.epsilon {
            params::epsilon("--epsilon", e)?;
        }
        params::count("--steps", self.steps)?;
        params::positive("--lr", self.lr)?;
        params::non_negative("--lambda", self.lambda)?;
        params::count("--batch-size", self.batch_size)?;
        params::count("--limit", self.limit)?;
        Ok(())
    }
}

impl AnalyzeArgs {
    /// Checks the numbers before any model or data is read.
    pub fn check(&self) -> Result<()> {
        params::count("--limit", self.limit)?;
        params::count("--top-k", self.top_k)?;
        params::count("--trace-top", self.trace_top)?;
        Ok(())
    }
}

impl ReproduceArgs {
    /// Checks the numbers before any work starts.
    pub fn check(&self) -> Result<()> {
        params::count("--threads", self.threads)?;
        params::count("--jobs", self.jobs)?;
        params::count("--replicates", self.replicates)?;
        Ok(())
    }
}

impl ExportArgs {
    pub fn into_config(self) -> Result<ExportConfig> {
        params::count("--samples", self.samples)?;
        let device = self.device.select()?;
        Ok(ExportConfig { run_dir: self.run, data_dir: self.data, samples: self.samples, checkpoint: self.checkpoint, out_dir: self.out, device })
    }
}
