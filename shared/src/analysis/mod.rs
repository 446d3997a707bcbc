//! The paper's analyses: neuron metrics ([`metrics`]), tracing a prediction back to its
//! influential neurons ([`trace`]), and the neuron atlas format ([`atlas`]). Definitions: `docs/analysis.md`.

pub mod atlas;
pub mod metrics;
pub mod trace;
