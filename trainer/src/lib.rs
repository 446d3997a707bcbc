//! # advlens-trainer
//!
//! Everything that needs libtorch: datasets, architectures, training, export of bundles.
//! The `advlens` binary (`src/main.rs`) is a thin CLI over these modules, which follow the
//! pipeline: [`data`] -> [`arch`] / [`net`] -> [`train`] -> [`export`].

pub mod arch;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod export;
pub mod net;
pub mod train;
