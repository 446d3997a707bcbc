//! Which model the page shows: a bundled one, the visitor's picked file, or `?bundle=URL` —
//! chosen from the URL, listed in the model menu, and opened from the page's controls.

use std::rc::Rc;

use wasm_bindgen::JsCast;

use super::{show_notices, App, Nav};
use crate::config::{CatalogEntry, OWN_FILE_ID};
use crate::dom::{by_id, document, replace_children, El};
use crate::onnx_choices::{Normalisation, OnnxChoices};
use crate::panels::LoadedModel;
use crate::state::PageState;

impl App {
    /// The model `state` names — `?bundle=URL`, the visitor's picked file, or a bundled one —
    /// with `state.model` / `state.bundle` made to match it; what could not be found becomes a note.
    /// A file gets the visitor's ONNX choices (whether it is an ONNX file shows once it is loaded).
    pub(super) fn entry(&self, state: &mut PageState, notes: &mut Vec<String>) -> CatalogEntry {
        let mut entry = self.named_entry(state, notes);
        if entry.file.is_some() {
            entry.onnx = state.onnx.clone();
        }
        entry
    }

    fn named_entry(&self, state: &mut PageState, notes: &mut Vec<String>) -> CatalogEntry {
        let first = &self.catalog[0];
        if let Some(url) = &state.bundle {
            state.model = None;
            return CatalogEntry::own(format!("url:{url}"), crate::own_model::title_of(url), url.clone());
        }
        let entry = match state.model.as_deref() {
            None => first.clone(),
            Some(OWN_FILE_ID) => self.own_file.borrow().clone().unwrap_or_else(|| {
                notes.push(format!("a model file opened from your disk is not kept when the page reloads: open it again below (showing “{}”)", first.title));
                first.clone()
            }),
            Some(id) => self.catalog.iter().find(|e| e.id == id).cloned().unwrap_or_else(|| {
                let ids: Vec<&str> = self.catalog.iter().map(|e| e.id.as_str()).collect();
                notes.push(format!("there is no model `{id}` here (the models: {}): showing “{}”", ids.join(", "), first.title));
                first.clone()
            }),
        };
        state.model = Some(if entry.file.is_some() { OWN_FILE_ID.to_string() } else { entry.id.clone() });
        entry
    }

    /// The catalog's other models trained on the same data as `model`: they take its images
    /// and classes, so the ensemble attack may combine them (the rest judge its transfer).
    pub(super) fn companions(&self, model: &LoadedModel) -> Vec<CatalogEntry> {
        let Some(data) = &model.entry.dataset else { return Vec::new() };
        self.catalog.iter().filter(|e| e.id != model.entry.id && e.dataset.as_ref() == Some(data)).cloned().collect()
    }

    /// The model list shows the bundled models and the visitor's, with `entry` selected.
    pub(super) fn show_models(&self, entry: &CatalogEntry) {
        let Ok(select) = by_id("model") else { return };
        let own = entry.file.as_ref().map(|_| El::new("option").attr("value", if entry.id.starts_with("url:") { &entry.id } else { OWN_FILE_ID }).text(&format!("Your model: {}", entry.title)));
        replace_children(&select, self.catalog.iter().map(|e| El::new("option").attr("value", &e.id).text(&e.title)).chain(own));
        if let Some(select) = select.dyn_ref::<web_sys::HtmlSelectElement>() {
            select.set_value(if entry.file.is_some() && !entry.id.starts_with("url:") { OWN_FILE_ID } else { &entry.id });
        }
    }

    /// Opens a model file the visitor picked or dropped.
    pub async fn open_model_file(self: &Rc<Self>, file: web_sys::File) {
        let Some(onnx) = read_onnx_fields() else { return };
        if file.size() > crate::own_model::MAX_BYTES as f64 {
            show_notices(&[format!("“{}” is {:.0} MB: the page opens model files of {}", file.name(), file.size() / 1e6, crate::own_model::limits_text())]);
            return;
        }
        let Ok(url) = web_sys::Url::create_object_url_with_blob(&file) else {
            show_notices(&["the browser could not read the file".to_string()]);
            return;
        };
        if let Some(old) = self.own_file.borrow().as_ref().and_then(|e| e.file.clone()) {
            let _ = web_sys::Url::revoke_object_url(&old);
        }
        self.files_picked.set(self.files_picked.get() + 1);
        *self.own_file.borrow_mut() = Some(CatalogEntry::own(format!("{OWN_FILE_ID}-{}", self.files_picked.get()), file.name(), url));
        let next = PageState { model: Some(OWN_FILE_ID.into()), engine: self.state.borrow().engine, onnx, ..Default::default() };
        self.navigate(&next.to_query(), Nav::Push).await;
    }

    /// Opens the single-file bundle at a URL the visitor typed (`?bundle=`).
    pub async fn open_model_url(self: &Rc<Self>, url: String) {
        let url = url.trim().to_string();
        if url.is_empty() {
            show_notices(&["type the address of a model file first".to_string()]);
            return;
        }
        let Some(onnx) = read_onnx_fields() else { return };
        let next = PageState { bundle: Some(url), engine: self.state.borrow().engine, onnx, ..Default::default() };
        self.navigate(&next.to_query(), Nav::Push).await;
    }

    /// Opens the visitor's model again with the pixels and classes chosen under "Open your own model".
    pub async fn reopen_with_choices(self: &Rc<Self>) {
        let current = self.state.borrow().clone();
        if current.bundle.is_none() && current.model.as_deref() != Some(OWN_FILE_ID) {
            show_notices(&["these choices are for a model file you open: pick an ONNX file above (they apply to it)".to_string()]);
            return;
        }
        let Some(onnx) = read_onnx_fields() else { return };
        let next = PageState { model: current.model.clone(), bundle: current.bundle.clone(), engine: current.engine, onnx, ..Default::default() };
        self.navigate(&next.to_query(), Nav::Push).await;
    }

    /// The fields show the choices `state` opens the visitor's model with (after a reload or a
    /// shared link).
    pub(super) fn show_onnx_choices(&self, state: &PageState) {
        let choice = match &state.onnx.normalisation {
            None => "file",
            Some(n) if n.is_imagenet() => "imagenet",
            Some(_) => "custom",
        };
        if let Ok(Some(radio)) = document().query_selector(&format!("input[name=onnx-pixels][value={choice}]")) {
            if let Some(radio) = radio.dyn_ref::<web_sys::HtmlInputElement>() {
                radio.set_checked(true);
            }
        }
        if let Some(check) = document().get_element_by_id("onnx-imagenet-classes").and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()) {
            check.set_checked(state.onnx.imagenet_classes);
        }
        if let Some(n) = state.onnx.normalisation.as_ref().filter(|n| !n.is_imagenet()) {
            for (id, text) in [("onnx-mean", n.mean_text()), ("onnx-std", n.std_text())] {
                if let Some(input) = document().get_element_by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()) {
                    input.set_value(&text.replace(',', ", "));
                }
            }
        }
    }
}

/// The choices of the fields; for an unreadable mean or std, a notice and `None` (the page stays
/// as it is).
fn read_onnx_fields() -> Option<OnnxChoices> {
    let imagenet_classes = document().get_element_by_id("onnx-imagenet-classes").and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()).is_some_and(|i| i.checked());
    Some(OnnxChoices { normalisation: read_normalisation_fields()?, imagenet_classes })
}

fn read_normalisation_fields() -> Option<Option<Normalisation>> {
    let choice = document()
        .query_selector("input[name=onnx-pixels]:checked")
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        .map(|i| i.value())
        .unwrap_or_default();
    let field = |id: &str| document().get_element_by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()).map(|i| i.value()).unwrap_or_default();
    match choice.as_str() {
        "imagenet" => Some(Some(Normalisation::imagenet())),
        "custom" => match Normalisation::parse(&field("onnx-mean"), &field("onnx-std")) {
            Ok(n) => Some(Some(n)),
            Err(why) => {
                show_notices(&[format!("the pixels' mean and std: {why}")]);
                None
            }
        },
        _ => Some(None),
    }
}
