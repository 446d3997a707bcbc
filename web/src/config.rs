//! Every constant of the explorer: where things are fetched from, sizes, budgets.

use serde::Deserialize;

/// The list of bundled models, relative to the page.
pub const CATALOG_URL: &str = "models/index.json";
/// Folder holding one sub-folder per model bundle.
pub const MODELS_URL: &str = "models";
/// Folder of a bundle's neuron atlases: `atlas/<layer>/` (`advlens analyze --atlas`).
pub const ATLAS_DIR: &str = "atlas";

/// Budget of the page's attack when the model does not state its training epsilon.
pub const DEFAULT_EPSILON: f32 = advlens_shared::attack::DEFAULT_EPSILON;
/// Steps of the page's attacks when the URL gives none.
pub const ATTACK_STEPS: usize = advlens_shared::attack::DEFAULT_STEPS;

/// CSS pixels of the sample thumbnails, the large image views and a channel map.
pub const THUMB_PX: f64 = 56.0;
pub const LARGE_PX: f64 = 224.0;
pub const CHANNEL_PX: f64 = 40.0;
/// Channel maps a row in the network view's layer grids.
pub const GRID_COLUMNS: usize = 16;
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
    /// The data it was trained on (`mnist`, `cifar10`, …): models of one dataset take the same
    /// images, so the ensemble attack may combine them.
    #[serde(default)]
    pub dataset: Option<String>,
    /// A visitor's own model: the URL of its single file (`?bundle=`, or a blob: URL for a
    /// picked file) instead of a folder under `models/`.
    #[serde(skip)]
    pub file: Option<String>,
    /// What the visitor chose for an ONNX file among them (`?mean=&std=&classes=`).
    #[serde(skip)]
    pub onnx: crate::onnx_choices::OnnxChoices,
}

impl CatalogEntry {
    pub fn base(&self) -> String {
        format!("{MODELS_URL}/{}", self.id)
    }

    /// A visitor's model file at `url`, shown as `title`.
    pub fn own(id: String, title: String, url: String) -> CatalogEntry {
        CatalogEntry { id, title, atlas: Vec::new(), dataset: None, file: Some(url), onnx: Default::default() }
    }
}

/// `?model=` of the model file a visitor picked (a page-local blob: URL, gone after a reload).
pub const OWN_FILE_ID: &str = "your-file";
