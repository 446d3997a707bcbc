//! Drawing the comparison panel: the compared model opened in its own worker, checked against
//! the explored one, and both run on the shown image (`crate::compare` computes, the panel draws).

use std::rc::Rc;

use advlens_shared::tensor::argmax;

use super::{set_status, App};
use crate::compare::Side;
use crate::atlas::AtlasState;
use crate::config::ATTACK_STEPS;
use crate::dom::{by_id, replace_children};
use crate::error::AppError;
use crate::panels::{self, LoadedModel, Scene};
use crate::protocol::{AttackRow, EnginePref};
use crate::state::{ImageKind, PageState};

impl App {
    /// The comparison panel: the chooser, and both models on the shown image when one is chosen.
    pub(super) async fn render_compare(&self, model: &Rc<LoadedModel>, state: &PageState, image: &[f32], clean: &[f32], attack: Option<Rc<AttackRow>>, generation: u64) -> Result<(), AppError> {
        use panels::compare::CompareState;
        let look = self.looks.ready(&(state.view_key(), state.image));
        let atlas = AtlasState::None;
        let draw = |shown: CompareState| -> Result<(), AppError> {
            let Some(look) = &look else { return Ok(()) };
            let layer = model.layers.last().map(|(n, _)| n.clone()).unwrap_or_default();
            let scene = Scene { state, model, image, look, real_look: None, layer: &layer, class: 0, atlas: &atlas, attack: attack.as_deref(), companions: &[] };
            by_id("compare-body").map(|e| replace_children(&e, [panels::compare::compare(&scene, &self.catalog, shown)]))
        };
        let Some(id) = state.compare.clone() else { return draw(CompareState::None) };
        let Some(entry) = self.catalog.iter().find(|e| e.id == id) else { return draw(CompareState::None) };
        set_status("working", &format!("Comparing with “{}”…", entry.title));
        let other = match self.comparison.model(entry, state.engine.unwrap_or(EnginePref::Auto)).await {
            Ok(m) => m,
            Err(e) => return draw(CompareState::Problem(format!("“{}” could not be opened: {e}", entry.title))),
        };
        if !self.current(generation) {
            return Ok(());
        }
        if let Some(why) = crate::compare::incompatible(model, &other) {
            return draw(CompareState::Problem(format!("These two models cannot look at the same images: {why}.")));
        }
        draw(CompareState::Running(&other))?;
        // The explored model's side from the page's own results: its prediction (the look), the
        // trace of its last layer for that prediction and that layer's atlas, computed once.
        let Some(look) = &look else { return Ok(()) };
        let layer = model.layers.last().map(|(n, _)| n.clone()).ok_or_else(|| AppError::Model("the model has no layer of neurons to show".into()))?;
        let class = argmax(&look.probabilities);
        let mut top = (*self.trace((state.view_key(), state.image, layer.clone(), class), image.to_vec()).await?).clone();
        top.truncate(crate::compare::COMPARE_NEURONS);
        let explored = Side { probabilities: look.probabilities.clone(), layer: layer.clone(), class, top, atlas: self.atlas(model, &layer).await, own_attack: attack.clone() };
        let adversarial = state.image == ImageKind::Adversarial;
        let ask = crate::compare::Ask {
            pixels: image.to_vec(),
            clean: clean.to_vec(),
            label: model.label(state),
            spec: adversarial.then(|| state.attack.resolve(model.epsilon(), ATTACK_STEPS)),
        };
        let key = format!("{} {} {}", model.entry.id, other.entry.id, state.view_key());
        match self.comparison.side(key, other.clone(), ask).await {
            Ok(side) if self.current(generation) => draw(CompareState::Done(&other, &explored, &side)),
            Ok(_) => Ok(()),
            Err(e) if self.current(generation) => draw(CompareState::Problem(format!("The comparison could not be computed: {e}"))),
            Err(_) => Ok(()),
        }
    }
}
