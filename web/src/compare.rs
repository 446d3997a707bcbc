//! Compare: a second model, in a second worker, beside the explored one on the same image — the
//! real one, or the adversarial image made on the explored model (the attack transferred) — with
//! each model's own attack under the same settings and each model's most influential neurons,
//! their atlas patches and consistency. Standard vs consistent training is the paper's comparison.

use std::cell::RefCell;
use std::rc::Rc;

use advlens_shared::analysis::trace::Influence;
use advlens_shared::attack::AttackSpec;
use advlens_shared::tensor::argmax;
use futures_util::future::FutureExt;

use crate::atlas::{Atlas, AtlasState};
use crate::client::Compute;
use crate::config::CatalogEntry;
use crate::error::AppError;
use crate::memo::Memo;
use crate::panels::LoadedModel;
use crate::protocol::{AttackRow, EnginePref, Reply, Request};

/// Neurons listed per model.
pub const COMPARE_NEURONS: usize = 3;

/// One model's view of the compared image.
pub struct Side {
    pub probabilities: Vec<f32>,
    /// Its last feature layer, and the class explained there (its prediction).
    pub layer: String,
    pub class: usize,
    /// The most influential neurons of `layer` for `class`.
    pub top: Vec<Influence>,
    pub atlas: Rc<AtlasState>,
    /// On the adversarial view: this model attacked with the same settings.
    pub own_attack: Option<Rc<AttackRow>>,
}

/// The compared model's worker, the model in it, and the results per view.
#[derive(Default)]
pub struct Comparison {
    compute: RefCell<Option<Compute>>,
    model: RefCell<Option<(Rc<LoadedModel>, EnginePref)>>,
    sides: RefCell<Option<Rc<Memo<String, Side>>>>,
}

/// What the compared model's side is computed from.
pub struct Ask {
    /// The shown image (real, or adversarial at its step) and the real one.
    pub pixels: Vec<f32>,
    pub clean: Vec<f32>,
    pub label: Option<usize>,
    /// The attack, on the adversarial view (run on the compared model too).
    pub spec: Option<AttackSpec>,
}

impl Comparison {
    /// `entry` opened in the comparison's worker (started on first use), or the one already there.
    pub async fn model(&self, entry: &CatalogEntry, engine: EnginePref) -> Result<Rc<LoadedModel>, AppError> {
        if let Some((m, e)) = self.model.borrow().as_ref() {
            if m.entry.id == entry.id && *e == engine {
                return Ok(m.clone());
            }
        }
        let started = self.compute.borrow().clone(); // no borrow held across the start below
        let compute = match started {
            Some(c) => c,
            None => {
                let c = Compute::start().await;
                *self.compute.borrow_mut() = Some(c.clone());
                c
            }
        };
        *self.model.borrow_mut() = None;
        *self.sides.borrow_mut() = Some(Rc::new(Memo::new()));
        let model = Rc::new(crate::open::open(&compute, entry, engine).await?);
        *self.model.borrow_mut() = Some((model.clone(), engine));
        Ok(model)
    }

    /// The compared model's side of the view named `key`, computed once in its worker (the
    /// explored model's side comes from the page's own results).
    pub async fn side(&self, key: String, other: Rc<LoadedModel>, ask: Ask) -> Result<Rc<Side>, AppError> {
        let memo = self.sides.borrow().clone().ok_or_else(|| AppError::Model("no model to compare with is loaded".into()))?;
        let compute = self.compute.borrow().clone().ok_or_else(|| AppError::Model("the comparison's worker has not started".into()))?;
        let make = move || {
            async move {
                let own = match &ask.spec {
                    Some(spec) => Some(attack(&compute, &ask, spec.clone()).await?),
                    None => None,
                };
                compute_side(&compute, &other, &ask, own).await.map(Rc::new).map_err(|e| e.to_string())
            }
            .boxed_local()
        };
        memo.get(key, make).await.map_err(AppError::Model)
    }
}

async fn attack(compute: &Compute, ask: &Ask, spec: AttackSpec) -> Result<Rc<AttackRow>, String> {
    let request = Request::Attack { pixels: ask.clean.clone(), label: ask.label, attack: spec, companions: Vec::new() };
    compute.ask(request, |r| if let Reply::Attacked(a) = r { Ok(a) } else { Err(r) }).await.map(Rc::new)
}

/// The compared model's prediction on the shown image, its top neurons there, and their atlas.
async fn compute_side(compute: &Compute, model: &LoadedModel, ask: &Ask, own_attack: Option<Rc<AttackRow>>) -> Result<Side, AppError> {
    let probabilities = compute
        .ask(Request::Classify { pixels: ask.pixels.clone(), n: 1 }, |r| if let Reply::Classified(p) = r { Ok(p) } else { Err(r) })
        .await
        .map_err(AppError::Model)?
        .pop()
        .ok_or_else(|| AppError::Model("no prediction".into()))?;
    let class = argmax(&probabilities);
    let layer = model.layers.last().map(|(n, _)| n.clone()).ok_or_else(|| AppError::Model("the model has no layer of neurons to show".into()))?;
    let mut top = compute
        .ask(Request::Trace { pixels: ask.pixels.clone(), class, layer: layer.clone() }, |r| if let Reply::Traced(t) = r { Ok(t) } else { Err(r) })
        .await
        .map_err(AppError::Model)?;
    top.truncate(COMPARE_NEURONS);
    let atlas = if model.entry.atlas.contains(&layer) {
        match Atlas::fetch(&model.entry.base(), &layer, model.classes().len()).await {
            Ok(a) => AtlasState::Loaded(Rc::new(a)),
            Err(e) => AtlasState::Broken(e.to_string()),
        }
    } else {
        AtlasState::None
    };
    let atlas = Rc::new(atlas);
    Ok(Side { probabilities, layer, class, top, atlas, own_attack })
}

/// Why two models cannot be compared on the same images, if they cannot.
pub fn incompatible(a: &LoadedModel, b: &LoadedModel) -> Option<String> {
    if a.info.input_shape() != b.info.input_shape() {
        return Some(format!("“{}” takes {:?} images and “{}” {:?}", a.entry.title, a.info.input_shape(), b.entry.title, b.info.input_shape()));
    }
    if a.classes() != b.classes() {
        return Some(format!("“{}” and “{}” have different classes", a.entry.title, b.entry.title));
    }
    None
}
