//! The explorer's controller: the URL state, the loaded model, the results computed so far,
//! and navigation between states without reloading the page. Computing happens in the worker
//! (`client.rs`), drawing in `panels/`; this file decides what to ask and when to redraw.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use advlens_shared::analysis::trace::Influence;
use advlens_shared::attack::AttackKind;
use advlens_shared::tensor::argmax;
use futures_util::future::FutureExt;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::atlas::{Atlas, AtlasState};
use crate::client::Compute;
use crate::config::{CatalogEntry, ATTACK_STEPS, CATALOG_URL};
use crate::dom::{by_id, document, replace_children, El};
use crate::error::AppError;
use crate::fetch;
use crate::memo::{Clear, Memo};
use crate::panels::attack::AttackStatus;
use crate::panels::{self, LoadedModel, Scene};
use crate::protocol::{AttackRow, Companion, EnginePref, Look, Reply, Request};
use crate::state::{ImageKind, PageState};

mod images;
mod models;
mod side_by_side;

/// How a navigation touches the browser history.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// A new entry (a click).
    Push,
    /// Rewrite the current entry (start-up, a corrected URL).
    Replace,
    /// Leave the history alone (back / forward).
    Keep,
}

pub struct App {
    compute: Compute,
    catalog: Vec<CatalogEntry>,
    model: RefCell<Option<Rc<LoadedModel>>>,
    engine: Cell<EnginePref>,
    pub state: RefCell<PageState>,
    /// Bumped by every navigation; a render that finds it changed stops.
    generation: Cell<u64>,
    /// Keyed by `PageState::view_key` (the real image, or the adversarial one at its step).
    looks: Memo<(String, ImageKind), Look>,
    traces: Memo<(String, ImageKind, String, usize), Vec<Influence>>,
    attacks: Memo<String, AttackRow>,
    atlases: Memo<String, AtlasState>,
    attack_running: Cell<bool>,
    attack_error: RefCell<Option<String>>,
    /// The model file the visitor picked, as a blob: URL (`?model=your-file`).
    own_file: RefCell<Option<CatalogEntry>>,
    /// Bumped by every picked file, so that a second file with the same name loads again.
    files_picked: Cell<u32>,
    /// The model compared with this one (`?compare=`), in its own worker.
    comparison: crate::compare::Comparison,
    /// Why the worker moved to the CPU engine, for the next navigation's notes.
    engine_note: RefCell<Option<String>>,
}

/// Shows `text` in the status line (a live region); `state` is loading, working, ready, error
/// or panic. Never fails: with no page to write to, it writes to the console.
pub fn set_status(state: &str, text: &str) {
    match web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("status")) {
        Some(status) => {
            let _ = status.set_attribute("data-state", state);
            status.set_text_content(Some(text));
        }
        None => web_sys::console::error_1(&format!("{state}: {text}").into()),
    }
}

/// Shows what was wrong with the URL (and what the page did instead), or nothing.
pub(crate) fn show_notices(notes: &[String]) {
    if let Ok(box_) = by_id("notices") {
        replace_children(&box_, notes.iter().map(|n| El::new("p").text(&format!("Note: {n}."))));
        let _ = box_.toggle_attribute_with_force("hidden", notes.is_empty());
    }
}

thread_local! {
    /// The page's worker, for [`simulate_device_loss`].
    static DEVICE_LOSS_HOOK: RefCell<Option<Compute>> = const { RefCell::new(None) };
}

/// A test hook (`window.wasmBindings.simulateDeviceLoss(step)`): the next attack destroys the
/// worker's GPU device after `step` steps, as a lost GPU would. Resolves to whether it is armed
/// (false on the CPU engine).
#[wasm_bindgen(js_name = simulateDeviceLoss)]
pub async fn simulate_device_loss(step: usize) -> bool {
    let Some(compute) = DEVICE_LOSS_HOOK.with(|hook| hook.borrow().clone()) else { return false };
    matches!(compute.request(Request::SimulateDeviceLoss { at_step: step }).await, Ok(Reply::DeviceLost(true)))
}

/// Starts the explorer in this page.
pub async fn start() {
    if let Err(e) = run().await {
        set_status("error", &format!("The explorer could not start: {e}. Reload the page to try again."));
    }
}

async fn run() -> Result<(), AppError> {
    set_status("loading", "Starting the compute worker…");
    // The worker starts while the catalog downloads.
    let (compute, catalog) = futures_util::future::join(Compute::start(), fetch::bytes(CATALOG_URL)).await;
    let catalog: Vec<CatalogEntry> = serde_json::from_slice(&catalog?).map_err(|e| AppError::Data(format!("{CATALOG_URL}: {e}")))?;
    if catalog.is_empty() {
        return Err(AppError::Data(format!("{CATALOG_URL} lists no models")));
    }
    let select = by_id("model")?;
    replace_children(&select, catalog.iter().map(|e| El::new("option").attr("value", &e.id).text(&e.title)));
    let app = Rc::new(App {
        compute,
        catalog,
        model: RefCell::new(None),
        engine: Cell::new(EnginePref::Auto),
        state: RefCell::new(PageState::default()),
        generation: Cell::new(0),
        looks: Memo::new(),
        traces: Memo::new(),
        attacks: Memo::new(),
        atlases: Memo::new(),
        attack_running: Cell::new(false),
        attack_error: RefCell::new(None),
        own_file: RefCell::new(None),
        files_picked: Cell::new(0),
        comparison: Default::default(),
        engine_note: RefCell::new(None),
    });
    if let Ok(limits) = by_id("own-limits") {
        limits.set_text_content(Some(&crate::own_model::limits_text()));
    }
    let weak = Rc::downgrade(&app);
    app.compute.on_engine_change(Rc::new(move |engine, description, reason| {
        if let Ok(badge) = by_id("engine") {
            let _ = badge.set_attribute("data-engine", engine);
            badge.set_text_content(Some(&format!("Running on {description} — the GPU failed ({reason}), so the CPU engine took over")));
        }
        let note = format!("the GPU failed ({reason}): the page now computes on the CPU engine, and what you asked for was computed again there");
        show_notices(std::slice::from_ref(&note));
        // Shown again by the navigation that follows (which replaces the notes).
        if let Some(app) = weak.upgrade() {
            *app.engine_note.borrow_mut() = Some(note);
        }
    }));
    DEVICE_LOSS_HOOK.with(|hook| *hook.borrow_mut() = Some(app.compute.clone()));
    crate::listen::listen(&app)?;
    crate::own_image::listen_for_drawing()?;
    let query = web_sys::window().ok_or_else(|| AppError::Browser("no window".into()))?.location().search()?;
    app.navigate(&query, Nav::Replace).await;
    Ok(())
}

impl App {
    fn current(&self, generation: u64) -> bool {
        self.generation.get() == generation
    }

    /// Shows the state `query` describes: loads the model if it changed, checks every value
    /// against it (saying what was wrong), records the URL and redraws.
    pub(crate) async fn navigate(self: &Rc<Self>, query: &str, nav: Nav) {
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let (mut state, mut notes) = PageState::parse(query);
        notes.extend(self.engine_note.borrow_mut().take());
        let entry = self.entry(&mut state, &mut notes);
        if let Some(id) = state.compare.clone() {
            if id == entry.id || !self.catalog.iter().any(|e| e.id == id) {
                notes.push(format!("?compare={id} is not another model of this page: comparing with none"));
                state.compare = None;
            }
        }
        let engine = state.engine.unwrap_or(EnginePref::Auto);
        self.show_models(&entry);
        if entry.file.is_some() {
            self.show_onnx_choices(&state);
        }
        let loaded = self.model.borrow().clone().filter(|m| m.entry.id == entry.id && m.entry.onnx == entry.onnx && self.engine.get() == engine);
        let model = match loaded {
            Some(m) => m,
            None => match self.load(&entry, engine, generation).await {
                Ok(m) => m,
                Err(e) if entry.file.is_some() && self.current(generation) => {
                    // A visitor's model that does not open: say why, and go back to a bundled one.
                    *self.own_file.borrow_mut() = None;
                    let back = PageState { model: Some(self.catalog[0].id.clone()), engine: state.engine, ..Default::default() };
                    Box::pin(self.navigate(&back.to_query(), Nav::Replace)).await;
                    notes.push(format!("“{}” could not be opened: {e}. The page opens single-file bundles and ONNX files ({}); showing “{}” instead", entry.title, crate::own_model::limits_text(), self.catalog[0].title));
                    show_notices(&notes);
                    return;
                }
                Err(e) => {
                    if self.current(generation) {
                        show_notices(&notes);
                        set_status("error", &format!("Cannot open “{}”: {e}. Pick another model above.", entry.title));
                    }
                    return;
                }
            },
        };
        if !self.current(generation) {
            return;
        }
        // The one place for every model that is not an ONNX file: bundled, packed or ?bundle=.
        if !state.onnx.is_default() && !model.is_onnx() {
            notes.push(format!("?mean=, ?std= and ?classes= are for ONNX files; “{}” is an advlens model with its own normalisation and classes: ignored", model.entry.title));
            state.onnx = Default::default();
        }
        let layers: Vec<(String, usize)> = model.layers.iter().map(|(n, [c, _, _])| (n.clone(), *c)).collect();
        let input_len = model.info.input_shape().iter().product();
        notes.extend(state.validate(model.samples.samples.len(), &layers, model.classes().len(), input_len, model.is_concept_world()));
        show_notices(&notes);
        let url = state.to_query();
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = match nav {
                Nav::Push if self.state.borrow().to_query() != url => history.push_state_with_url(&JsValue::NULL, "", Some(&url)),
                Nav::Push | Nav::Replace => history.replace_state_with_url(&JsValue::NULL, "", Some(&url)),
                Nav::Keep => Ok(()),
            };
        }
        embed(&state);
        *self.state.borrow_mut() = state;
        if let Err(e) = self.render(&model, generation).await {
            if self.current(generation) {
                set_status("error", &format!("{e}. Pick another image or model, or reload the page."));
            }
        }
    }

    /// Loads a model in the worker with its samples, and draws what depends only on it.
    async fn load(&self, entry: &CatalogEntry, engine: EnginePref, generation: u64) -> Result<Rc<LoadedModel>, AppError> {
        set_status("loading", &format!("Loading “{}”…", entry.title));
        *self.model.borrow_mut() = None;
        for memo in [&self.looks as &dyn Clear, &self.traces, &self.attacks, &self.atlases] {
            memo.clear_all();
        }
        *self.attack_error.borrow_mut() = None;
        // An attack still running on the previous model would hold the worker: stop it.
        if self.attack_running.get() && self.compute.can_cancel() {
            self.compute.restart("the model was changed", None).await.map_err(AppError::Model)?;
            self.attack_running.set(false);
        }
        let model = Rc::new(crate::open::open(&self.compute, entry, engine).await?);
        engine_badge(&model, &self.compute);
        if let Ok(card) = by_id("model-card-body") {
            replace_children(&card, [panels::card::card(&model)]);
        }
        if let Ok(sources) = by_id("sources-body") {
            replace_children(&sources, [panels::sources::sources(&model)]);
            crate::own_image::clear_drawing();
        }
        if self.current(generation) {
            *self.model.borrow_mut() = Some(model.clone());
            self.engine.set(engine);
        }
        Ok(model)
    }

    /// Draws every panel for the current state, computing (or reusing) what they show.
    async fn render(self: &Rc<Self>, model: &Rc<LoadedModel>, generation: u64) -> Result<(), AppError> {
        let mut state = self.state.borrow().clone();
        let focused = document().active_element().and_then(|e| e.get_attribute("data-key"));
        by_id("gallery").map(|g| replace_children(&g, [panels::samples::gallery(model, &state)]))?;
        let clean = model.pixels(&state);
        let key = state.image_key();
        let attack = match state.image {
            ImageKind::Adversarial => match self.attack(model, &state, generation).await {
                Ok(row) => Some(row),
                Err(e) => {
                    show_notices(&[format!("the adversarial image could not be made ({e}): showing the real image")]);
                    state.image = ImageKind::Real;
                    None
                }
            },
            ImageKind::Real => self.attacks.ready(&state.attack_key()),
        };
        if !self.current(generation) {
            return Ok(());
        }
        let image: Vec<f32> = match (&attack, state.image) {
            (Some(row), ImageKind::Adversarial) => row.image_at(state.step).to_vec(),
            _ => clean.clone(),
        };
        let view = state.view_key();
        set_status("working", &format!("Looking inside {}…", if state.image == ImageKind::Real { "the image" } else { "the adversarial image" }));
        let look = self.look(model, &view, state.image, image.clone()).await?;
        if !self.current(generation) {
            return Ok(());
        }
        // On the adversarial image, the real image's view too, to show what changed.
        let real_look = match state.image {
            ImageKind::Adversarial => Some(self.look(model, &key, ImageKind::Real, clean.clone()).await?),
            ImageKind::Real => None,
        };
        if !self.current(generation) {
            return Ok(());
        }
        let layer = state.layer.clone().or_else(|| model.layers.last().map(|(n, _)| n.clone())).unwrap_or_default();
        let class = state.class.unwrap_or_else(|| argmax(&look.probabilities));
        let atlas = self.atlas(model, &layer).await;
        if !self.current(generation) {
            return Ok(());
        }
        let attack_status = if self.attack_running.get() {
            AttackStatus::Running
        } else {
            self.attack_error.borrow().clone().map_or(AttackStatus::Idle, AttackStatus::Failed)
        };
        let companions = self.companions(model);
        let scene = Scene { state: &state, model, image: &image, look: &look, real_look: real_look.as_deref(), layer: &layer, class, atlas: &atlas, attack: attack.as_deref(), companions: &companions };
        by_id("network-body").map(|e| replace_children(&e, [panels::network::network(&scene)]))?;
        // The other panels in a task of their own: a large model's network view alone is most
        // of the 50 ms a task may take.
        crate::dom::next_task().await;
        if !self.current(generation) {
            return Ok(());
        }
        // The trace of the shown image and, on an adversarial one, of the real image for the
        // same class: the neurons aligned before and after the attack.
        let shown_key = (view.clone(), state.image, layer.clone(), class);
        let real_key = (state.image == ImageKind::Adversarial).then(|| (key.clone(), ImageKind::Real, layer.clone(), class));
        let ready = |k: &Option<_>| k.as_ref().and_then(|k| self.traces.ready(k));
        let traced = (!layer.is_empty()).then(|| self.traces.ready(&shown_key)).flatten();
        let real_traced = ready(&real_key);
        let top = traced.as_ref().and_then(|t| t.first()).map(|r| r.channel);
        by_id("neuron-body").map(|e| replace_children(&e, [panels::neuron::neuron(&scene, top)]))?;
        // A slider being dragged stays: only its step's part of the panel is redrawn.
        let scrubbing = focused.as_deref() == Some("attack-step") && panels::attack::show_step(&scene, &clean);
        if !scrubbing {
            by_id("attack-body").map(|e| replace_children(&e, [panels::attack::attack(&scene, &clean, &attack_status, self.compute.can_cancel())]))?;
        }
        by_id("why-body").map(|e| replace_children(&e, [panels::why::why(&scene, traced.as_deref().map(Vec::as_slice), real_traced.as_deref().map(Vec::as_slice))]))?;
        restore_focus(focused.as_deref());
        if layer.is_empty() {
            set_status("ready", &ready_text(model, &state));
            return Ok(());
        }
        if traced.is_none() || (real_key.is_some() && real_traced.is_none()) {
            set_status("working", "Tracing the prediction to its neurons…");
            let trace = self.trace(shown_key, image.clone()).await?;
            if !self.current(generation) {
                return Ok(());
            }
            let redraw = |real: Option<&[Influence]>| -> Result<(), AppError> {
                let focused = document().active_element().and_then(|e| e.get_attribute("data-key"));
                by_id("why-body").map(|e| replace_children(&e, [panels::why::why(&scene, Some(&trace), real)]))?;
                restore_focus(focused.as_deref());
                Ok(())
            };
            redraw(None)?;
            if state.neuron.is_none() {
                let top = trace.first().map(|r| r.channel);
                by_id("neuron-body").map(|e| replace_children(&e, [panels::neuron::neuron(&scene, top)]))?;
            }
            if let Some(real_key) = real_key {
                set_status("working", "Tracing the real image, to align its neurons with the adversarial one's…");
                let real = self.trace(real_key, clean.clone()).await?;
                if !self.current(generation) {
                    return Ok(());
                }
                redraw(Some(&real))?;
            }
        }
        self.render_compare(model, &state, &image, &clean, attack.clone(), generation).await?;
        set_status("ready", &ready_text(model, &state));
        Ok(())
    }

    /// The trace of `pixels` keyed by (view, kind, layer, class), computed once.
    async fn trace(&self, key: (String, ImageKind, String, usize), pixels: Vec<f32>) -> Result<Rc<Vec<Influence>>, AppError> {
        let (compute, layer, class) = (self.compute.clone(), key.2.clone(), key.3);
        let ask = async move { compute.ask(Request::Trace { pixels, class, layer }, |r| if let Reply::Traced(t) = r { Ok(t) } else { Err(r) }).await.map(Rc::new) };
        self.traces.get(key, move || ask.boxed_local()).await.map_err(AppError::Model)
    }

    /// Every feature layer's maps and the probabilities for one image, computed once.
    async fn look(&self, model: &LoadedModel, key: &str, kind: ImageKind, pixels: Vec<f32>) -> Result<Rc<Look>, AppError> {
        let (compute, layers) = (self.compute.clone(), model.layers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        let ask = async move { compute.ask(Request::Look { pixels, layers }, |r| if let Reply::Looked(l) = r { Ok(l) } else { Err(r) }).await.map(Rc::new) };
        self.looks.get((key.to_string(), kind), move || ask.boxed_local()).await.map_err(AppError::Model)
    }

    /// The layer's atlas, fetched the first time (only for layers the catalog lists).
    async fn atlas(&self, model: &LoadedModel, layer: &str) -> Rc<AtlasState> {
        if !model.entry.atlas.iter().any(|l| l == layer) {
            return Rc::new(AtlasState::None);
        }
        let (base, layer_owned, classes) = (model.entry.base(), layer.to_string(), model.classes().len());
        let result = self
            .atlases
            .get(layer.to_string(), move || {
                async move {
                    Ok(Rc::new(match Atlas::fetch(&base, &layer_owned, classes).await {
                        Ok(atlas) => AtlasState::Loaded(Rc::new(atlas)),
                        Err(e) => AtlasState::Broken(e.to_string()),
                    }))
                }
                .boxed_local()
            })
            .await;
        result.unwrap_or_else(|e| Rc::new(AtlasState::Broken(e)))
    }

    /// The PGD attack on the image `state` shows, run once per image and model.
    async fn attack(&self, model: &LoadedModel, state: &PageState, generation: u64) -> Result<Rc<AttackRow>, String> {
        let key = state.attack_key();
        if let Some(row) = self.attacks.ready(&key) {
            return Ok(row);
        }
        let attack = state.attack.resolve(model.epsilon(), ATTACK_STEPS);
        if self.current(generation) {
            set_status("working", &format!("Attacking: {}…", attack.describe(|c| model.class_name(c))));
        }
        let companions = match attack.kind {
            AttackKind::Ensemble { .. } => self
                .companions(model)
                .iter()
                .map(|e| Ok(Companion { id: e.id.clone(), source: crate::open::source_of(e)?, attacked: state.attack.with.contains(&e.id) }))
                .collect::<Result<Vec<_>, AppError>>()
                .map_err(|e| e.to_string())?,
            _ => Vec::new(),
        };
        let (compute, pixels, label) = (self.compute.clone(), model.pixels(state), model.label(state));
        self.attack_running.set(true);
        let request = Request::Attack { pixels, label, attack, companions };
        let progress: crate::client::OnProgress = Rc::new(panels::attack::show_progress);
        let ask = async move { compute.ask_with_progress(request, Some(progress), |r| if let Reply::Attacked(a) = r { Ok(a) } else { Err(r) }).await.map(Rc::new) };
        let result = self.attacks.get(key, move || ask.boxed_local()).await;
        self.attack_running.set(false);
        result
    }

    /// The step slider moved: show the adversarial image after `step` steps. The history entry
    /// is rewritten, not added (a drag is one move).
    pub async fn step_moved(self: &Rc<Self>, step: usize, total: usize) {
        let mut next = self.state.borrow().clone();
        next.image = ImageKind::Adversarial;
        next.step = (step < total).then_some(step);
        self.navigate(&next.to_query(), Nav::Replace).await;
    }

    /// The Cancel button: a fresh worker (with the model loaded again) replaces the one that is
    /// attacking; the attack then fails with "cancelled" and the page says so.
    pub async fn cancel_clicked(self: &Rc<Self>) {
        if !self.attack_running.get() {
            return;
        }
        let Some(model) = self.model.borrow().clone() else { return };
        set_status("working", "Stopping the attack…");
        if let Err(e) = self.compute.restart("the attack was cancelled", Some(model.load.clone())).await {
            set_status("error", &format!("The attack could not be stopped: {e}"));
        }
    }

    /// The attack button: attack the current sample, then show the adversarial image. Clicks
    /// while an attack runs do nothing (the button is disabled too).
    pub async fn attack_clicked(self: &Rc<Self>) {
        if self.attack_running.get() {
            return;
        }
        let Some(model) = self.model.borrow().clone() else { return };
        let mut state = self.state.borrow().clone();
        match panels::attack::read_form(model.classes().len()) {
            Ok(params) => state.attack = params,
            Err(problems) => {
                show_notices(&problems);
                return;
            }
        }
        *self.attack_error.borrow_mut() = None;
        panels::attack::mark_running();
        let generation = self.generation.get();
        let result = self.attack(&model, &state, generation).await;
        let still_here = self.model.borrow().as_ref().is_some_and(|m| Rc::ptr_eq(m, &model)) && self.state.borrow().image_key() == state.image_key();
        match result {
            Ok(_) if still_here => {
                state.image = ImageKind::Adversarial;
                state.class = None;
                self.navigate(&state.to_query(), Nav::Push).await;
            }
            Ok(_) => {}
            // An attack on a model or image no longer shown (the visitor moved on) says nothing.
            Err(_) if !still_here => {}
            Err(e) => {
                *self.attack_error.borrow_mut() = Some(e);
                let current = self.state.borrow().to_query();
                self.navigate(&current, Nav::Replace).await;
            }
        }
    }
}

fn ready_text(model: &LoadedModel, state: &PageState) -> String {
    let which = if state.image == ImageKind::Adversarial { "the adversarial version of " } else { "" };
    let image = match (&state.pixels, state.concept) {
        (Some(_), _) => "your own image".to_string(),
        (None, Some(n)) => format!("concept-world image {n}"),
        (None, None) => format!("sample {}", state.sample),
    };
    format!("Ready: {which}{image} on “{}”.", model.entry.title)
}

/// `?embed=`: the page shows one view (CSS hides the rest) and a link to the whole explorer.
fn embed(state: &PageState) {
    let Some(body) = document().body() else { return };
    match state.embed {
        Some(view) => {
            let _ = body.set_attribute("data-embed", view.as_str());
            let mut full = state.clone();
            full.embed = None;
            if let Ok(link) = by_id("embed-link") {
                let _ = link.set_attribute("href", &full.to_query());
            }
        }
        None => {
            let _ = body.remove_attribute("data-embed");
        }
    }
}

/// Keyboard users keep their place: the element with the same `data-key` gets the focus back.
fn restore_focus(key: Option<&str>) {
    let Some(key) = key else { return };
    if let Ok(Some(e)) = document().query_selector(&format!("[data-key=\"{}\"]", key.replace('"', ""))) {
        if let Some(e) = e.dyn_ref::<web_sys::HtmlElement>() {
            let _ = e.focus();
        }
    }
}

fn engine_badge(model: &LoadedModel, compute: &Compute) {
    let Ok(badge) = by_id("engine") else { return };
    let _ = badge.set_attribute("data-engine", &model.info.engine);
    let _ = badge.set_attribute("data-worker", &compute.main_thread_reason.is_none().to_string());
    let mut text = format!("Running on {}", model.info.engine_description);
    if let Some(why) = &model.info.fallback_reason {
        text += &format!(" — WebGPU unavailable: {why}");
    }
    text += &match &compute.main_thread_reason {
        None => ", in a background worker".to_string(),
        Some(why) => format!(", on the page's main thread (no worker: {why})"),
    };
    badge.set_text_content(Some(&text));
}
