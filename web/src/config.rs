//! Constants of the explorer: where things are fetched from and how they are drawn.

use serde::Deserialize;

/// The list of bundled models, relative to the page.
pub const CATALOG_URL: &str = "models/index.json";
/// Folder holding one sub-folder per model bundle.
pub const MODELS_URL: &str = "models";
/// On-screen pixels per image pixel in the sample grid.
pub const SAMPLE_SCALE: u32 = 3;
/// How many classes each sample lists with their probabilities.
pub const TOP_CLASSES: usize = 3;

/// Budget of the inspector's attack when the model does not state its training epsilon.
pub const DEFAULT_EPSILON: f32 = 0.2;
/// Steps of the inspector's PGD attack.
pub const ATTACK_STEPS: usize = 10;
/// Folder of a bundle's optional neuron atlas (`advlens analyze --atlas`).
pub const ATLAS_DIR: &str = "atlas";
/// Atlas patches shown per traced neuron, of each kind (real, adversarial).
pub const ATLAS_PATCHES: usize = 5;
/// On-screen pixels per patch pixel.
pub const ATLAS_SCALE: usize = 3;
/// Traced neurons shown per image.
pub const TOP_NEURONS: usize = 5;

/// One entry of `models/index.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct CatalogEntry {
    /// Folder name under `models/`; also the `?model=` value.
    pub id: String,
    pub title: String,
    /// The bundle has a neuron atlas in `atlas/` (fetched only then: a dev server may answer
    /// a missing file with the page itself rather than a 404).
    #[serde(default)]
    pub atlas: bool,
}
