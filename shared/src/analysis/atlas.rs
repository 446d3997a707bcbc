//! The neuron atlas: for every neuron of one layer, its top real and top adversarial image
//! patches (as rows of two sprite sheets) and what the analysis measured about it. Written by
//! `advlens analyze --atlas`, read by `advlens trace` and by the explorer.
//!
//! Files in an atlas folder: `atlas.json` ([`AtlasMeta`]) and two sprite sheets, `real.png` and
//! `adversarial.png` (`.jpg` for colour models: [`SheetFormat`]).
//! Row `r` of each sheet is neuron `neurons[r]`; column `k` its k-th strongest image, as a
//! `patch x patch` crop followed by a [`GAP`]-pixel white gap.

use serde::{Deserialize, Serialize};

/// White pixels after each patch, right and below, in the sprite sheets.
pub const GAP: usize = 1;

/// Per-neuron results of the analysis (definitions: `docs/analysis.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronStats {
    pub channel: usize,
    /// consis on the top-K real images (their labels).
    pub consis_real: f64,
    /// consis on the top-K adversarial images, counted by source class (what a human sees).
    pub consis_adv_source: f64,
    /// consis on the top-K adversarial images, counted by target class (what the model sees).
    pub consis_adv_target: Option<f64>,
    /// cos(real histogram, adversarial histogram by source class).
    pub cs1: f64,
    /// cos(real histogram, adversarial histogram by target class).
    pub cs2: Option<f64>,
    /// The most frequent class among the top-K real images.
    pub real_class: usize,
    /// Best concept on real images: (category, name, IoU).
    pub concept: Option<(String, String, f64)>,
    /// Best concept on the adversarial versions of the same images.
    pub concept_adv: Option<(String, String, f64)>,
    /// Fewer than K of the real or of the adversarial images make it fire: its top-K lists end
    /// in zero responses, tied and taken in image order, so its consis and CS say nothing about
    /// it and the analysis leaves it out of their means. Adversarial training silences many.
    #[serde(default)]
    pub silent: bool,
}

/// One patch of the atlas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtlasEntry {
    /// Index of the image in the analysed set.
    pub image: usize,
    /// Its label (real) or source class (adversarial).
    pub label: usize,
    pub target: Option<usize>,
    pub response: f32,
    /// Top-left corner of the patch in the image.
    pub x: usize,
    pub y: usize,
}

/// One neuron of the atlas: its row in the sprite sheets and what is known about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtlasNeuron {
    pub stats: NeuronStats,
    pub real: Vec<AtlasEntry>,
    pub adversarial: Vec<AtlasEntry>,
}

/// `atlas.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtlasMeta {
    pub model: String,
    pub layer: String,
    pub classes: Vec<String>,
    pub patch: usize,
    pub receptive_field: f64,
    pub top_k: usize,
    pub neurons: Vec<AtlasNeuron>,
    /// How the two sprite sheets are encoded (older atlases: PNG).
    #[serde(default)]
    pub sheets: SheetFormat,
}

/// The sprite sheets' image format: PNG (lossless; grey images compress well) or JPEG (colour
/// photographs: PNG sheets of CIFAR-10 patches are about 1 MB a layer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SheetFormat {
    #[default]
    Png,
    Jpeg,
}

impl SheetFormat {
    /// The file of the `real` or `adversarial` sheet: `real.png`, `adversarial.jpg`, …
    pub fn file(self, kind: &str) -> String {
        match self {
            SheetFormat::Png => format!("{kind}.png"),
            SheetFormat::Jpeg => format!("{kind}.jpg"),
        }
    }
}

/// Caps on what an `atlas.json` may describe, so that a hostile file cannot make a reader
/// compute absurd sheet sizes or allocate without bound.
pub mod limits {
    /// Largest patch side in pixels.
    pub const MAX_PATCH: usize = 1024;
    /// Most patches per neuron.
    pub const MAX_TOP_K: usize = 1000;
    /// Most neurons (sheet rows).
    pub const MAX_NEURONS: usize = 100_000;
    /// Largest sheet side in pixels (browsers refuse larger images).
    pub const MAX_SHEET_SIDE: usize = 32_767;
}

impl AtlasMeta {
    /// Parses and checks `atlas.json`: sizes within [`limits`], every class index within the
    /// class list, every neuron once, at most `top_k` patches per neuron. `classes`, when
    /// given, is the model's class count, which the atlas must match.
    pub fn from_json(bytes: &[u8], classes: Option<usize>) -> crate::Result<Self> {
        let bad = |why: String| crate::Error::Atlas(why);
        let meta: AtlasMeta = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a valid atlas description: {e}")))?;
        if let Some(n) = classes.filter(|&n| n != meta.classes.len()) {
            return Err(bad(format!("it lists {} classes, the model has {n}: it was made for another model", meta.classes.len())));
        }
        if meta.patch == 0 || meta.patch > limits::MAX_PATCH || meta.top_k == 0 || meta.top_k > limits::MAX_TOP_K || meta.neurons.len() > limits::MAX_NEURONS {
            return Err(bad(format!(
                "implausible sizes: patch {} (1 to {}), top_k {} (1 to {}), {} neurons (at most {})",
                meta.patch,
                limits::MAX_PATCH,
                meta.top_k,
                limits::MAX_TOP_K,
                meta.neurons.len(),
                limits::MAX_NEURONS
            )));
        }
        let cell = meta.patch + GAP;
        let (w, h) = (meta.top_k.checked_mul(cell), meta.neurons.len().checked_mul(cell));
        if !matches!((w, h), (Some(w), Some(h)) if w <= limits::MAX_SHEET_SIDE && h <= limits::MAX_SHEET_SIDE) {
            return Err(bad(format!("its sprite sheets would exceed {} pixels a side", limits::MAX_SHEET_SIDE)));
        }
        for name in meta.classes.iter().chain([&meta.model, &meta.layer]) {
            crate::model::check_printable("name", name).map_err(|_| bad(format!("name {name:?} contains control characters")))?;
        }
        let class_ok = |c: usize| c < meta.classes.len();
        let mut seen = std::collections::HashSet::new();
        for n in &meta.neurons {
            let ch = n.stats.channel;
            if !seen.insert(ch) {
                return Err(bad(format!("neuron {ch} is listed twice")));
            }
            if n.real.len() > meta.top_k || n.adversarial.len() > meta.top_k {
                return Err(bad(format!("neuron {ch} has more than top_k = {} patches", meta.top_k)));
            }
            let entries = n.real.iter().chain(&n.adversarial);
            if !class_ok(n.stats.real_class) || entries.clone().any(|e| !class_ok(e.label) || e.target.is_some_and(|t| !class_ok(t))) {
                return Err(bad(format!("neuron {ch} refers to a class beyond the {} listed", meta.classes.len())));
            }
        }
        Ok(meta)
    }

    /// The sheet row of `channel`, if the atlas has that neuron.
    pub fn row_of(&self, channel: usize) -> Option<usize> {
        self.neurons.iter().position(|n| n.stats.channel == channel)
    }

    /// Top-left pixel of the `k`-th patch of sheet row `row`.
    pub fn cell_origin(&self, row: usize, k: usize) -> (usize, usize) {
        let cell = self.patch + GAP;
        (k * cell, row * cell)
    }

    /// Width and height a sheet must have.
    pub fn sheet_size(&self) -> (usize, usize) {
        let cell = self.patch + GAP;
        (self.top_k * cell, self.neurons.len() * cell)
    }

    /// A one-line summary of a neuron for people: its class, consistency and concept.
    pub fn describe(&self, row: usize) -> String {
        let n = &self.neurons[row];
        let class = |c: usize| self.classes.get(c).map_or("?", String::as_str);
        let mut s = if n.stats.silent {
            format!("silent: fewer than {} of the analysed images make it fire, so its top images are mostly ties", self.top_k)
        } else {
            format!("top real images mostly {} (consis {:.2}; adversarial {:.2})", class(n.stats.real_class), n.stats.consis_real, n.stats.consis_adv_source)
        };
        if let Some((cat, name, iou)) = &n.stats.concept {
            s += &format!(", concept {cat}:{name} (IoU {iou:.2})");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(neurons: usize) -> AtlasMeta {
        let stats = |channel| NeuronStats {
            channel,
            consis_real: 0.5,
            consis_adv_source: 0.25,
            consis_adv_target: None,
            cs1: 1.0,
            cs2: None,
            real_class: 1,
            concept: Some(("part".into(), "wheel".into(), 0.25)),
            concept_adv: None,
            silent: channel % 2 == 1,
        };
        AtlasMeta {
            model: "m".into(),
            layer: "relu2".into(),
            classes: vec!["zero".into(), "one".into()],
            patch: 8,
            receptive_field: 8.0,
            top_k: 10,
            neurons: (0..neurons).map(|r| AtlasNeuron { stats: stats(3 * r), real: vec![], adversarial: vec![] }).collect(),
            sheets: SheetFormat::Png,
        }
    }

    #[test]
    fn rows_cells_and_sheet_size_follow_the_layout() {
        let m = meta(4);
        assert_eq!(m.row_of(6), Some(2));
        assert_eq!(m.row_of(7), None);
        assert_eq!(m.cell_origin(2, 3), (27, 18));
        assert_eq!(m.sheet_size(), (90, 36));
        assert_eq!(m.describe(0), "top real images mostly one (consis 0.50; adversarial 0.25), concept part:wheel (IoU 0.25)");
        // Channel 3 is silent in `meta`.
        assert_eq!(m.describe(1), "silent: fewer than 10 of the analysed images make it fire, so its top images are mostly ties, concept part:wheel (IoU 0.25)");
    }

    #[test]
    fn json_round_trips() {
        let m = meta(2);
        let back: AtlasMeta = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
