//! Every constant of the explorer: where things are fetched from, sizes, budgets.

use serde::Deserialize;

/// The list of bundled models, relative to the page.
pub const CATALOG_URL: &str = "models/index.json";
/// Folder holding one sub-folder per model bundle.
pub const MODELS_URL: &str = "models";
/// Folder of a bundle's neuron atlases: `atlas/<layer>/` (`advlens analyze --atlas`).
pub const ATLAS_DIR: &str = "atlas";

/// Budget of the page's attack when the model does not state its training epsilon.
pub const DEFAULT_EPSILON: f32 = 0.2;
/// Steps of the page's PGD attack.
pub const ATTACK_STEPS: usize = 10;

/// CSS pixels of the sample thumbnails, the large image views and a channel map.
pub const THUMB_PX: f64 = 56.0;
pub const LARGE_PX: f64 = 224.0;
pub const CHANNEL_PX: f64 = 40.0;
/// CSS pixels of the drawing area.
pub const DRAW_PX: f64 = 168.0;
/// Limits on uploads, checked before decoding.
pub const UPLOAD_MAX_BYTES: u64 = 50_000_000;
pub const UPLOAD_MAX_SIDE: u32 = 16_384;
pub const UPLOAD_MAX_PIXELS: u64 = 50_000_000;
/// Canvas pixels per sheet pixel of an enlarged atlas patch.
pub const PATCH_SCALE: usize = 8;
/// Atlas patches shown per neuron, of each kind (real, adversarial).
pub const ATLAS_PATCHES: usize = 5;
/// Neurons listed under "why this prediction?".
pub const TOP_NEURONS: usize = 6;
/// Classes listed with their probabilities beside a prediction.
pub const TOP_CLASSES: usize = 3;

/// How long the page waits for its compute worker before computing on the main thread.
pub const WORKER_START_TIMEOUT_MS: i32 = 20_000;

/// One entry of `models/index.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct CatalogEntry {
    /// Folder name under `models/`; also the `?model=` value.
    pub id: String,
    pub title: String,
    /// The layers that have a neuron atlas in `atlas/<layer>/` (fetched only then: a dev
    /// server may answer a missing file with the page itself rather than a 404).
    #[serde(default)]
    pub atlas: Vec<String>,
}

impl CatalogEntry {
    pub fn base(&self) -> String {
        format!("{MODELS_URL}/{}", self.id)
    }
}
