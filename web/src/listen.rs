//! The page's listeners: one per event type, delegated from the document, reading what to do
//! from `data-*` attributes — so panels can be redrawn freely without adding listeners.
//! `a[data-nav]` links navigate without reload; `button[data-action]` and
//! `select[data-param]` / file inputs call the app.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::app::{App, Nav};
use crate::dom::document;
use crate::error::AppError;
use crate::state::PageState;

/// One listener per event type for the whole page, reading what to do from `data-*`
/// attributes (so re-drawn panels need no new listeners).
pub fn listen(app: &Rc<App>) -> Result<(), AppError> {
    let doc = document();
    let on_click = {
        let app = app.clone();
        Closure::<dyn FnMut(web_sys::MouseEvent)>::new(move |e: web_sys::MouseEvent| {
            let Some(target) = e.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
            if let Ok(Some(link)) = target.closest("a[data-nav]") {
                // Let the browser open new tabs and windows itself.
                if e.button() != 0 || e.ctrl_key() || e.meta_key() || e.shift_key() || e.alt_key() {
                    return;
                }
                e.prevent_default();
                let href = link.get_attribute("href").unwrap_or_default();
                let app = app.clone();
                wasm_bindgen_futures::spawn_local(async move { app.navigate(&href, Nav::Push).await });
            } else if let Ok(Some(button)) = target.closest("button[data-action]") {
                let app = app.clone();
                match button.get_attribute("data-action").as_deref() {
                    Some("attack") => wasm_bindgen_futures::spawn_local(async move { app.attack_clicked().await }),
                    Some("use-drawing") => {
                        if let Some(pixels) = crate::own_image::drawing_pixels() {
                            wasm_bindgen_futures::spawn_local(async move { app.show_own_image(pixels).await });
                        }
                    }
                    Some("clear-drawing") => crate::own_image::clear_drawing(),
                    Some("new-concept") => wasm_bindgen_futures::spawn_local(async move { app.show_new_concept().await }),
                    Some("cancel-attack") => wasm_bindgen_futures::spawn_local(async move { app.cancel_clicked().await }),
                    Some("reopen-with-choices") => wasm_bindgen_futures::spawn_local(async move { app.reopen_with_choices().await }),
                    Some("open-model-url") => {
                        let url = document().get_element_by_id("model-url").and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()).map(|i| i.value()).unwrap_or_default();
                        wasm_bindgen_futures::spawn_local(async move { app.open_model_url(url).await });
                    }
                    Some(which @ ("copy-link" | "copy-embed")) => {
                        let (state, embed) = (app.state.borrow().clone(), which == "copy-embed");
                        wasm_bindgen_futures::spawn_local(async move { crate::share::copy(&state, embed).await });
                    }
                    _ => {}
                }
            }
        })
    };
    doc.add_event_listener_with_callback("click", on_click.as_ref().unchecked_ref())?;
    on_click.forget(); // one listener for the page's lifetime
    let on_change = {
        let app = app.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            if let Some(input) = e.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
                if input.get_attribute("data-param").as_deref() == Some("step") {
                    return; // followed on `input`
                }
                if input.has_attribute("data-part") {
                    let state = app.state.borrow().clone();
                    if let (Some(n), Some(side)) = (state.concept, app.input_side()) {
                        crate::concept_view::redraw(side, n);
                    }
                    return;
                }
                if let Some(file) = input.files().and_then(|f| f.get(0)) {
                    let app = app.clone();
                    if input.id() == "model-file" {
                        input.set_value(""); // picking the same file again loads it again
                        wasm_bindgen_futures::spawn_local(async move { app.open_model_file(file).await });
                    } else {
                        wasm_bindgen_futures::spawn_local(async move { app.upload(file).await });
                    }
                }
                return;
            }
            let Some(select) = e.target().and_then(|t| t.dyn_into::<web_sys::HtmlSelectElement>().ok()) else { return };
            if select.id() == "attack-kind" {
                crate::panels::attack::show_kind_fields(&select.value());
                return;
            }
            let Some(param) = select.get_attribute("data-param") else { return };
            let mut state = app.state.borrow().clone();
            let value = select.value();
            match param.as_str() {
                "model" => {
                    state = match value.strip_prefix("url:") {
                        Some(url) => PageState { bundle: Some(url.to_string()), engine: state.engine, ..Default::default() },
                        None => PageState { model: Some(value), engine: state.engine, ..Default::default() },
                    }
                }
                "layer" => {
                    state.layer = Some(value);
                    state.neuron = None; // channel numbers belong to a layer
                }
                "class" => state.class = value.parse().ok(),
                "compare" => state.compare = Some(value).filter(|v| !v.is_empty()),
                _ => return,
            }
            let app = app.clone();
            wasm_bindgen_futures::spawn_local(async move { app.navigate(&state.to_query(), Nav::Push).await });
        })
    };
    doc.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref())?;
    on_change.forget();
    // The step slider follows the pointer (`input`), not only its release (`change`).
    let on_input = {
        let app = app.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            let Some(input) = e.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
            if input.get_attribute("data-param").as_deref() != Some("step") {
                return;
            }
            let (Ok(step), Ok(total)) = (input.value().parse::<usize>(), input.max().parse::<usize>()) else { return };
            let app = app.clone();
            wasm_bindgen_futures::spawn_local(async move { app.step_moved(step, total).await });
        })
    };
    doc.add_event_listener_with_callback("input", on_input.as_ref().unchecked_ref())?;
    on_input.forget();
    // A file dropped anywhere: a model file opens as the model, anything else as an image.
    let on_drag = Closure::<dyn FnMut(web_sys::DragEvent)>::new(|e: web_sys::DragEvent| e.prevent_default());
    doc.add_event_listener_with_callback("dragover", on_drag.as_ref().unchecked_ref())?;
    on_drag.forget();
    let on_drop = {
        let app = app.clone();
        Closure::<dyn FnMut(web_sys::DragEvent)>::new(move |e: web_sys::DragEvent| {
            let Some(file) = e.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)) else { return };
            e.prevent_default();
            let app = app.clone();
            if file.name().ends_with(".safetensors") {
                wasm_bindgen_futures::spawn_local(async move { app.open_model_file(file).await });
            } else {
                wasm_bindgen_futures::spawn_local(async move { app.upload(file).await });
            }
        })
    };
    doc.add_event_listener_with_callback("drop", on_drop.as_ref().unchecked_ref())?;
    on_drop.forget();
    let on_pop = {
        let app = app.clone();
        Closure::<dyn FnMut()>::new(move || {
            let query = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
            let app = app.clone();
            wasm_bindgen_futures::spawn_local(async move { app.navigate(&query, Nav::Keep).await });
        })
    };
    web_sys::window().ok_or_else(|| AppError::Browser("no window".into()))?.add_event_listener_with_callback("popstate", on_pop.as_ref().unchecked_ref())?;
    on_pop.forget();
    Ok(())
}

