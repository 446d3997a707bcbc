//! The study: what measures and decides the paper's claims. It grows here file by file (see
//! issue 16); today it holds the statistics that turn per-neuron numbers from several
//! replicates into intervals and verdicts.

pub mod stats;
