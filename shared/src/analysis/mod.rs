//! The paper's analyses: neuron metrics ([`metrics`]) and tracing a prediction back to its
//! influential neurons ([`trace`]). Definitions: `docs/analysis.md`.

pub mod metrics;
pub mod trace;
