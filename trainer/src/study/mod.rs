//! The study: what measures and decides the paper's claims. It grows here file by file (see
//! issue 16): the statistics that turn per-neuron numbers from several replicates into
//! intervals and verdicts (`stats`), the rows a reproduction measured (`results`), and the
//! claims decided from them (`claims`). Imports run one way: claims → results, stats.

pub mod claims;
pub mod results;
pub mod stats;
