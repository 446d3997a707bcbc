//! Command-line arguments; converted to library configs at once.

use std::path::PathBuf;

use advlens_trainer::{export::ExportConfig, train::TrainConfig};
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
    /// Train a model and write a run directory (config, graph, metrics, checkpoint).
    Train(TrainArgs),
    /// Turn a run directory into a model bundle (model.json + weights.safetensors + samples.json).
    Export(ExportArgs),
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
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// mnist, fashion-mnist or cifar10.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Dataset folder (see `advlens data list`).
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Folder with the dataset's IDX files (train-images-idx3-ubyte[.gz], ...).
    #[arg(long, env = "ADVLENS_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Dataset in that folder: mnist, fashion-mnist or cifar10.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Architecture: small-cnn.
    #[arg(long, default_value = "small-cnn")]
    pub arch: String,
    /// Model name written into the bundle.
    #[arg(long, default_value = "mnist-small")]
    pub name: String,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only (quick runs and tests).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Run directory to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads (1 keeps a shared 2-core machine responsive).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl TrainArgs {
    pub fn into_config(self) -> TrainConfig {
        TrainConfig {
            dataset: self.dataset,
            data_dir: self.data,
            arch: self.arch,
            name: self.name,
            epochs: self.epochs,
            batch_size: self.batch_size.max(1),
            learning_rate: self.lr,
            seed: self.seed,
            limit: self.limit,
            out_dir: self.out,
        }
    }
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
    /// Bundle directory to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

impl ExportArgs {
    pub fn into_config(self) -> ExportConfig {
        ExportConfig { run_dir: self.run, data_dir: self.data, samples: self.samples, out_dir: self.out }
    }
}
