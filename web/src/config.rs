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
/// Traced neurons shown per image.
pub const TOP_NEURONS: usize = 5;

/// One entry of `models/index.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct CatalogEntry {
    /// Folder name under `models/`; also the `?model=` value.
    pub id: String,
    pub title: String,
}
