//! What a reproduction measured on each trained model: the rows every report and verdict reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::AnalysisReport;

/// One trained model and what was measured on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelResult {
    pub world: String,
    pub arch: String,
    pub mode: String,
    /// The replicate's seed (weights, batch order, augmentation, attacks).
    #[serde(default)]
    pub seed: u64,
    pub clean_accuracy: f64,
    pub robust_accuracy: BTreeMap<String, f64>,
    pub attacked: bool,
    pub analysis: AnalysisReport,
}
