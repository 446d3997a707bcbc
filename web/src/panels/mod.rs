//! The page's panels. Each builds its DOM from the state and the computed results it is
//! given — nothing else: no fetching, no computing beyond formatting, no listeners (elements
//! carry `data-nav` links and `data-action` / `data-param` attributes that `app.rs` handles).
//! Results carry `data-*` attributes with the raw numbers, for tests and embedding pages.

pub mod attack;
pub mod card;
pub mod compare;
pub mod network;
pub mod neuron;
pub mod samples;
pub mod sources;
pub mod why;

use advlens_shared::model::SampleSet;

use crate::atlas::AtlasState;
use crate::config::CatalogEntry;
use crate::protocol::{AttackRow, Look, ModelInfo};
use crate::state::{ImageKind, PageState};

/// A model loaded in the worker, as the page holds it.
pub struct LoadedModel {
    pub entry: CatalogEntry,
    /// The bundle's absolute URL and the engine asked for: what a restarted worker loads.
    pub load: crate::protocol::Request,
    pub info: ModelInfo,
    pub samples: SampleSet,
    /// Each sample's class probabilities, computed by the engine.
    pub probabilities: Vec<Vec<f32>>,
    /// The layers whose neurons the page shows, with their `[C, H, W]`.
    pub layers: Vec<(String, [usize; 3])>,
    /// The class-similarity matrix of the consistency metric.
    pub similarity: Vec<Vec<f64>>,
}

impl LoadedModel {
    pub fn classes(&self) -> &[String] {
        &self.info.spec.classes
    }

    /// A class's name, or its number when the model has no such class.
    pub fn class_name(&self, c: usize) -> String {
        self.classes().get(c).cloned().unwrap_or_else(|| format!("class {c}"))
    }

    /// The attack budget: the model's training epsilon, else the one it was evaluated at (the
    /// `@eps` of its robust-accuracy entries, e.g. `pgd20@0.1`), else the default.
    pub fn epsilon(&self) -> f32 {
        self.info.spec.provenance.attack_epsilon().map_or(crate::config::DEFAULT_EPSILON, |e| e as f32)
    }

    /// The image `state` shows (before any attack), CHW bytes: the visitor's own, a generated
    /// concept-world image, or a sample.
    pub fn image_bytes<'a>(&'a self, state: &'a PageState) -> std::borrow::Cow<'a, [u8]> {
        match (&state.pixels, state.concept) {
            (Some(p), _) => p.as_slice().into(),
            (None, Some(n)) => crate::concept_view::generate(self.info.input_shape()[1], n).pixels.into(),
            (None, None) => match self.samples.samples.get(state.sample) {
                Some(s) => s.pixels.as_slice().into(),
                // A model file without sample images: a black image until the visitor draws one.
                None => vec![0; self.info.input_shape().iter().product()].into(),
            },
        }
    }

    /// The model came from an ONNX file (imported in the page): the one kind whose pixels the
    /// visitor chooses.
    pub fn is_onnx(&self) -> bool {
        self.info.spec.provenance.extra.get("imported_from").is_some_and(|v| v["format"] == "onnx")
    }

    /// The model sees the concept world: its classes are the world's objects (in any order:
    /// an image folder sorts them by name).
    pub fn is_concept_world(&self) -> bool {
        let [c, h, w] = self.info.input_shape();
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        c == 3 && h == w && advlens_shared::concepts::ConceptWorld::new(h).is_ok_and(|world| sorted(world.classes()) == sorted(self.classes().to_vec()))
    }

    /// The model's class for the concept world's object `object`.
    fn concept_class(&self, object: usize) -> Option<usize> {
        let name = advlens_shared::concepts::ConceptWorld::default().classes().get(object)?.clone();
        self.classes().iter().position(|c| *c == name)
    }

    /// The same as values in [0, 1].
    pub fn pixels(&self, state: &PageState) -> Vec<f32> {
        self.image_bytes(state).iter().map(|&p| f32::from(p) / 255.0).collect()
    }

    /// The true class of the shown image, when known (a sample's label; not for own images).
    pub fn label(&self, state: &PageState) -> Option<usize> {
        match (&state.pixels, state.concept) {
            (Some(_), _) => None,
            (None, Some(n)) => self.concept_class(crate::concept_view::generate(self.info.input_shape()[1], n).class),
            (None, None) => self.samples.samples.get(state.sample).map(|s| s.label),
        }
    }
}

/// Everything the panels draw for one state of the page.
pub struct Scene<'a> {
    pub state: &'a PageState,
    pub model: &'a LoadedModel,
    /// The image the views show (the real sample, or its adversarial version).
    pub image: &'a [f32],
    /// The model's view of it.
    pub look: &'a Look,
    /// The model's view of the real image, when the views show the adversarial one.
    pub real_look: Option<&'a Look>,
    /// The layer of the neuron view and of the trace.
    pub layer: &'a str,
    /// The class being explained.
    pub class: usize,
    pub atlas: &'a AtlasState,
    /// The attack on this sample, once run.
    pub attack: Option<&'a AttackRow>,
    /// The page's other models that take this model's images: the ensemble attack's choices.
    pub companions: &'a [CatalogEntry],
}

impl Scene<'_> {
    /// The query string of this page with `change` applied.
    pub fn href(&self, change: impl FnOnce(&mut PageState)) -> String {
        let mut s = self.state.clone();
        change(&mut s);
        s.to_query()
    }

    pub fn predicted(&self) -> usize {
        advlens_shared::tensor::argmax(&self.look.probabilities)
    }

    /// The true class, when known.
    pub fn label(&self) -> Option<usize> {
        self.model.label(self.state)
    }

    /// "the adversarial image", "your image", "the image".
    pub fn image_name(&self) -> &'static str {
        match (self.state.image, self.state.pixels.is_some()) {
            (ImageKind::Adversarial, _) => "the adversarial image",
            (ImageKind::Real, true) => "your image",
            (ImageKind::Real, false) => "the image",
        }
    }

    /// "sample 3, a 7", "concept-world image 5, a car" or "your own image".
    pub fn image_origin(&self) -> String {
        match (self.label(), self.state.concept) {
            (Some(l), Some(n)) => format!("concept-world image {n}, {}", a(&self.model.class_name(l))),
            (Some(l), None) => format!("sample {}, {}", self.state.sample, a(&self.model.class_name(l))),
            (None, _) => "your own image".into(),
        }
    }
}

/// "a 7" / "an 8" / "an airplane".
pub fn a(name: &str) -> String {
    let vowel = name.chars().next().is_some_and(|c| "aeiouAEIOU8".contains(c)) || name == "11" || name == "18";
    format!("{} {name}", if vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn articles_follow_the_sound() {
        assert_eq!(super::a("7"), "a 7");
        assert_eq!(super::a("8"), "an 8");
        assert_eq!(super::a("airplane"), "an airplane");
        assert_eq!(super::a("T-shirt/top"), "a T-shirt/top");
    }
}
