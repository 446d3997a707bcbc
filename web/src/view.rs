//! Everything the explorer draws. Elements carry `data-*` attributes with the raw values so
//! that tests (and embedding pages) read results without parsing display text.

use std::collections::HashMap;

use advlens_shared::model::SampleSet;
use advlens_shared::tensor::argmax;
use advlens_shared::{Bundle, Engine};
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, Document, Element, HtmlCanvasElement, ImageData};

use crate::config::{CatalogEntry, SAMPLE_SCALE, TOP_CLASSES};
use crate::error::AppError;

pub fn document() -> Result<Document, AppError> {
    web_sys::window().and_then(|w| w.document()).ok_or_else(|| AppError::Browser("no document".into()))
}

pub(crate) fn by_id(doc: &Document, id: &str) -> Result<Element, AppError> {
    doc.get_element_by_id(id).ok_or_else(|| AppError::Browser(format!("the page has no #{id} element")))
}

pub(crate) fn element(doc: &Document, tag: &str, class: &str, text: &str) -> Result<Element, AppError> {
    let e = doc.create_element(tag)?;
    if !class.is_empty() {
        e.set_class_name(class);
    }
    if !text.is_empty() {
        e.set_text_content(Some(text));
    }
    Ok(e)
}

/// `?a=b&c=d` of the page URL.
pub fn query_params() -> Result<HashMap<String, String>, AppError> {
    let search = web_sys::window().ok_or_else(|| AppError::Browser("no window".into()))?.location().search()?;
    Ok(search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Shows `text` in the status line; `state` is one of loading, ready, error, panic.
/// Never fails: with no page to write to, it writes to the console.
pub fn set_status(state: &str, text: &str) {
    match document().ok().and_then(|d| d.get_element_by_id("status")) {
        Some(status) => {
            let _ = status.set_attribute("data-state", state);
            status.set_text_content(Some(text));
        }
        None => web_sys::console::error_1(&format!("{state}: {text}").into()),
    }
}

pub fn model_picker(doc: &Document, catalog: &[CatalogEntry], current: &str) -> Result<(), AppError> {
    let select = by_id(doc, "model")?;
    select.set_inner_html("");
    for entry in catalog {
        let option = element(doc, "option", "", &entry.title)?;
        option.set_attribute("value", &entry.id)?;
        if entry.id == current {
            option.set_attribute("selected", "")?;
        }
        select.append_child(&option)?;
    }
    // Picking a model reloads the page with ?model=<id>, so every view is a shareable URL.
    select.set_attribute("onchange", "location.search = '?model=' + encodeURIComponent(this.value)")?;
    Ok(())
}

pub fn engine_badge(doc: &Document, engine: &Engine, fallback_reason: Option<&str>) -> Result<(), AppError> {
    let badge = by_id(doc, "engine")?;
    badge.set_attribute("data-engine", engine.kind().as_str())?;
    let text = match fallback_reason {
        None => format!("Running on {}", engine.describe()),
        Some(why) => format!("Running on {} — WebGPU unavailable: {why}", engine.describe()),
    };
    badge.set_text_content(Some(&text));
    Ok(())
}

/// One card per sample: the image, its label, the prediction and the top classes.
pub fn sample_grid(doc: &Document, model: &str, classes: &[String], samples: &SampleSet, probabilities: &[Vec<f32>]) -> Result<(), AppError> {
    let grid = by_id(doc, "samples")?;
    grid.set_inner_html("");
    for (k, (sample, probs)) in samples.samples.iter().zip(probabilities).enumerate() {
        let predicted = argmax(probs);
        let card = element(doc, "figure", if predicted == sample.label { "sample" } else { "sample wrong" }, "")?;
        card.set_attribute("data-index", &sample.index.to_string())?;
        card.set_attribute("data-predicted", &predicted.to_string())?;
        card.set_attribute("data-label", &sample.label.to_string())?;
        // Clicking a sample opens it in the inspector; the URL says which, so it can be shared.
        card.set_attribute("onclick", &format!("location.search = '?model={}&sample={k}'", model.replace('\'', "")))?;
        let canvas = image_canvas(doc, &sample.pixels, samples.shape)?;
        card.append_child(&canvas)?;
        let caption = element(doc, "figcaption", "", "")?;
        let headline = format!("{} ({:.1}%)", classes[predicted], 100.0 * probs[predicted]);
        let headline = element(doc, "div", "predicted", &headline)?;
        caption.append_child(&headline)?;
        let truth = element(doc, "div", "label", &format!("true: {}", classes[sample.label]))?;
        caption.append_child(&truth)?;
        for (class, p) in top_classes(probs, TOP_CLASSES) {
            let row = element(doc, "div", "bar", "")?;
            let name = element(doc, "span", "name", &classes[class])?;
            row.append_child(&name)?;
            let fill = element(doc, "span", "fill", "")?;
            fill.set_attribute("style", &format!("width: {:.1}%", 100.0 * p))?;
            row.append_child(&fill)?;
            caption.append_child(&row)?;
        }
        card.append_child(&caption)?;
        grid.append_child(&card)?;
    }
    Ok(())
}

/// The layers and provenance of the model.
pub fn model_card(doc: &Document, bundle: &Bundle) -> Result<(), AppError> {
    let card = by_id(doc, "model-card")?;
    let spec = bundle.spec();
    let layers: Vec<String> = spec
        .nodes
        .iter()
        .map(|n| format!("{} {:?}", n.name, bundle.shape_of(&n.name).unwrap_or(&[])))
        .collect();
    let params: usize = bundle.weights().values().map(|t| t.len()).sum();
    let mut text = format!("{}: {} parameters; layers: {}", spec.name, params, layers.join(" → "));
    if let Some(acc) = spec.provenance.clean_accuracy {
        text += &format!("; test accuracy {:.2}%", 100.0 * acc);
    }
    if let Some(d) = &spec.provenance.dataset {
        text += &format!("; trained on {d}");
    }
    if let Some(mode) = &spec.provenance.training_mode {
        text += &format!(" ({mode} training)");
    }
    for (attack, acc) in &spec.provenance.robust_accuracy {
        text += &format!("; {:.1}% under {attack}", 100.0 * acc);
    }
    card.set_text_content(Some(&text));
    Ok(())
}

/// The `k` most probable classes, most probable first.
pub fn top_classes(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

/// RGBA pixels of a CHW byte image (grey when it has one channel).
pub fn to_rgba(pixels: &[u8], [c, h, w]: [usize; 3]) -> Vec<u8> {
    let plane = h * w;
    (0..plane)
        .flat_map(|i| {
            let px = |ch: usize| pixels[(ch.min(c - 1)) * plane + i];
            [px(0), px(1), px(2), 255]
        })
        .collect()
}

pub(crate) fn image_canvas(doc: &Document, pixels: &[u8], shape: [usize; 3]) -> Result<HtmlCanvasElement, AppError> {
    let [_, h, w] = shape;
    let canvas: HtmlCanvasElement = doc.create_element("canvas")?.dyn_into().map_err(|_| AppError::Browser("canvas".into()))?;
    canvas.set_width(w as u32);
    canvas.set_height(h as u32);
    canvas.set_attribute("style", &format!("width:{}px;height:{}px", w as u32 * SAMPLE_SCALE, h as u32 * SAMPLE_SCALE))?;
    let ctx: CanvasRenderingContext2d = canvas
        .get_context("2d")?
        .ok_or_else(|| AppError::Browser("no 2d context".into()))?
        .dyn_into()
        .map_err(|_| AppError::Browser("2d context".into()))?;
    let rgba = to_rgba(pixels, shape);
    let image = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), w as u32, h as u32)?;
    ctx.put_image_data(&image, 0.0, 0.0)?;
    Ok(canvas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_classes_are_sorted_and_truncated() {
        assert_eq!(top_classes(&[0.1, 0.6, 0.3], 2), vec![(1, 0.6), (2, 0.3)]);
        assert_eq!(top_classes(&[1.0], 3), vec![(0, 1.0)]);
    }

    #[test]
    fn grey_and_rgb_images_become_rgba() {
        assert_eq!(to_rgba(&[10, 20], [1, 1, 2]), vec![10, 10, 10, 255, 20, 20, 20, 255]);
        // CHW planes interleave into RGBA pixels.
        assert_eq!(to_rgba(&[1, 2, 3, 4, 5, 6], [3, 1, 2]), vec![1, 3, 5, 255, 2, 4, 6, 255]);
    }
}
