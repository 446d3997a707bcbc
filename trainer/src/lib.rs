//! # advlens-trainer
//!
//! Everything that needs libtorch: datasets, architectures, training, evaluation, export of
//! bundles. The `advlens` binary (`src/main.rs`) is a thin CLI over these modules, which follow
//! the pipeline: [`data`] -> [`arch`] / [`net`] -> [`attack`] / [`mode`] / [`optim`] -> [`train`]
//! -> [`eval`] -> [`export`]; [`plot`] draws the PNG charts, [`bench`] times training steps.

pub mod adversarial_set;
pub mod analysis;
pub mod arch;
pub mod attack;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod dist;
pub mod device;
pub mod eval;
pub mod export;
pub mod mode;
pub mod net;
pub mod optim;
pub mod params;
pub mod perturb;
pub mod plot;
pub mod precision;
pub mod reproduce;
pub mod study;
pub mod trace;
pub mod train;
