//! The inspector: one sample image, the neurons that caused its prediction, and a live attack
//! that changes the prediction — after which the neurons behind the new prediction are traced.
//! `?sample=k` picks the sample (default 0). Results carry `data-*` attributes for tests.
//! When the bundle has a neuron atlas, each traced neuron also shows the image patches that
//! excite it most among real images and among adversarial ones.

use std::rc::Rc;
use std::sync::Arc;

use advlens_shared::analysis::atlas::AtlasMeta;
use advlens_shared::analysis::trace::{trace, Influence};
use advlens_shared::attack::{attack, AttackSpec};
use advlens_shared::model::{Op, SampleSet};
use advlens_shared::tensor::{argmax, softmax};
use advlens_shared::{Bundle, Engine, Tensor};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement};

use crate::config::{ATLAS_DIR, ATLAS_PATCHES, ATLAS_SCALE, ATTACK_STEPS, DEFAULT_EPSILON, TOP_NEURONS};
use crate::fetch;
use crate::error::AppError;
use crate::view;

/// The last ReLU whose output is a feature map: where neurons are traced.
pub fn traced_layer(bundle: &Bundle) -> Option<String> {
    bundle
        .spec()
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Relu) && bundle.shape_of(&n.name).is_some_and(|s| s.len() == 3))
        .last()
        .map(|n| n.name.clone())
}

/// A bundle's neuron atlas: its description and the URLs of its two sprite sheets.
pub struct Atlas {
    pub meta: AtlasMeta,
    pub real_url: String,
    pub adversarial_url: String,
}

impl Atlas {
    /// The atlas under `base/atlas/`.
    pub async fn fetch(base: &str) -> Result<Atlas, AppError> {
        let dir = format!("{base}/{ATLAS_DIR}");
        let json = fetch::bytes(&format!("{dir}/atlas.json")).await?;
        let meta: AtlasMeta = serde_json::from_slice(&json).map_err(|e| AppError::Data(format!("{dir}/atlas.json: {e}")))?;
        Ok(Atlas { meta, real_url: format!("{dir}/real.png"), adversarial_url: format!("{dir}/adversarial.png") })
    }
}

/// Builds the inspector for sample `k` and traces its prediction.
pub async fn show(doc: &Document, engine: Rc<Engine>, bundle: Arc<Bundle>, samples: &SampleSet, k: usize, atlas: Option<Atlas>) -> Result<(), AppError> {
    let root = view::by_id(doc, "inspector")?;
    let Some(layer) = traced_layer(&bundle) else {
        root.set_text_content(Some("This model has no convolutional ReLU layer to trace."));
        return Ok(());
    };
    // An atlas of another layer would name the wrong neurons.
    let atlas = Rc::new(atlas.filter(|a| a.meta.layer == layer));
    let sample = samples.samples.get(k).ok_or_else(|| AppError::Data(format!("?sample={k}: the model has {} samples", samples.samples.len())))?;
    let shape = samples.shape;
    let image = Tensor::from_u8_images(vec![1, shape[0], shape[1], shape[2]], &sample.pixels)?;
    let epsilon = bundle.spec().provenance.epsilon.map_or(DEFAULT_EPSILON, |e| e as f32);
    root.set_inner_html("");
    root.set_attribute("data-sample", &k.to_string())?;
    root.set_attribute("data-layer", &layer)?;

    let clean = view::element(doc, "div", "panel", "")?;
    clean.set_id("clean");
    root.append_child(&clean)?;
    let button: HtmlElement = view::element(doc, "button", "", &format!("Attack: PGD-{ATTACK_STEPS}, ε = {epsilon}"))?
        .dyn_into()
        .map_err(|_| AppError::Browser("button".into()))?;
    button.set_id("attack");
    root.append_child(&button)?;
    let adversarial = view::element(doc, "div", "panel", "")?;
    adversarial.set_id("adversarial");
    adversarial.set_attribute("data-state", "idle")?;
    root.append_child(&adversarial)?;

    let classes = bundle.classes().to_vec();
    panel(doc, &clean, &engine, &image, &layer, &classes, "Real image", atlas.as_ref().as_ref()).await?;

    let (engine, label) = (engine.clone(), sample.label);
    let onclick = Closure::<dyn FnMut()>::new(move || {
        let (engine, image, layer, classes, atlas) = (engine.clone(), image.clone(), layer.clone(), classes.clone(), atlas.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let result = run_attack(&engine, &image, label, epsilon, &layer, &classes, atlas.as_ref().as_ref()).await;
            if let Err(e) = result {
                if let Some(panel) = view::document().ok().and_then(|d| d.get_element_by_id("adversarial")) {
                    let _ = panel.set_attribute("data-state", "error");
                    panel.set_text_content(Some(&format!("attack failed: {e}")));
                }
            }
        });
    });
    button.set_onclick(Some(onclick.as_ref().unchecked_ref()));
    onclick.forget(); // lives as long as the page
    Ok(())
}

async fn run_attack(engine: &Engine, image: &Tensor, label: usize, epsilon: f32, layer: &str, classes: &[String], atlas: Option<&Atlas>) -> Result<(), AppError> {
    let doc = view::document()?;
    let target = view::by_id(&doc, "adversarial")?;
    target.set_attribute("data-state", "running")?;
    target.set_text_content(Some("attacking…"));
    let outcome = attack(engine, image, label, &AttackSpec::pgd(epsilon, ATTACK_STEPS)).await?;
    let linf = outcome.image.data().iter().zip(image.data()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    target.set_inner_html("");
    target.set_attribute("data-linf", &linf.to_string())?;
    target.set_attribute("data-success", &outcome.success.to_string())?;
    panel(&doc, &target, engine, &outcome.image, layer, classes, &format!("Adversarial image (max change {linf:.3})"), atlas).await?;
    target.set_attribute("data-state", "done")?;
    Ok(())
}

/// An image, its prediction, and its top traced neurons with their activation maps.
#[allow(clippy::too_many_arguments)]
async fn panel(doc: &Document, into: &Element, engine: &Engine, image: &Tensor, layer: &str, classes: &[String], title: &str, atlas: Option<&Atlas>) -> Result<(), AppError> {
    let probs = softmax(engine.forward(image).await?.row(0));
    let predicted = argmax(&probs);
    into.set_attribute("data-predicted", &predicted.to_string())?;
    let node = view::element(doc, "h3", "", title)?;
    into.append_child(&node)?;
    let shape = [image.shape()[1], image.shape()[2], image.shape()[3]];
    let pixels: Vec<u8> = image.data().iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect();
    let node = view::image_canvas(doc, &pixels, shape)?;
    into.append_child(&node)?;
    let node = view::element(doc, "p", "predicted", &format!("predicted {} ({:.1}%)", classes[predicted], 100.0 * probs[predicted]))?;
    into.append_child(&node)?;
    let influences = trace(engine, image, predicted, layer).await?;
    let maps = engine.activations(image, &[layer]).await?.remove(layer).ok_or_else(|| AppError::Data(format!("no activations of {layer}")))?;
    let list = view::element(doc, "ol", "neurons", "")?;
    for inf in influences.iter().take(TOP_NEURONS) {
        let node = neuron(doc, inf, &maps, layer, atlas)?;
        list.append_child(&node)?;
    }
    into.append_child(&list)?;
    Ok(())
}

fn neuron(doc: &Document, inf: &Influence, maps: &Tensor, layer: &str, atlas: Option<&Atlas>) -> Result<Element, AppError> {
    let item = view::element(doc, "li", "neuron", "")?;
    item.set_attribute("data-channel", &inf.channel.to_string())?;
    item.set_attribute("data-logit-drop", &inf.logit_drop.to_string())?;
    let (h, w) = (maps.shape()[2], maps.shape()[3]);
    let plane = &maps.data()[inf.channel * h * w..(inf.channel + 1) * h * w];
    let hi = plane.iter().cloned().fold(1e-12f32, f32::max);
    // A heat map: dark to yellow.
    let heat: Vec<u8> = [0usize, 1, 2]
        .iter()
        .flat_map(|&ch| plane.iter().map(move |&v| {
            let t = (v.max(0.0) / hi).min(1.0);
            (255.0 * [t, t * t, 0.2 * t][ch]).round() as u8
        }))
        .collect();
    let node = view::image_canvas(doc, &heat, [3, h, w])?;
    item.append_child(&node)?;
    let text = view::element(doc, "div", "neuron-text", "")?;
    let node = view::element(doc, "span", "", &format!("{layer}[{}]: logit −{:.2} if silenced", inf.channel, inf.logit_drop))?;
    text.append_child(&node)?;
    if let Some((atlas, row)) = atlas.and_then(|a| a.meta.row_of(inf.channel).map(|r| (a, r))) {
        let rows = atlas_rows(doc, atlas, row)?;
        text.append_child(&rows)?;
    }
    item.append_child(&text)?;
    Ok(item)
}

/// The neuron's top real and top adversarial patches, cut from the atlas's sprite sheets with
/// CSS (no image decoding in wasm), and what the analysis says about it.
fn atlas_rows(doc: &Document, atlas: &Atlas, row: usize) -> Result<Element, AppError> {
    let meta = &atlas.meta;
    let block = view::element(doc, "div", "atlas", "")?;
    block.set_attribute("data-row", &row.to_string())?;
    let neuron = &meta.neurons[row];
    let class = |c: usize| meta.classes.get(c).cloned().unwrap_or_else(|| "?".into());
    let (sheet_w, sheet_h) = meta.sheet_size();
    // A silent neuron's patches are ties in image order: showing them would invent a meaning.
    block.set_attribute("data-silent", &neuron.stats.silent.to_string())?;
    let strips = if neuron.stats.silent { vec![] } else { vec![("real", &atlas.real_url, &neuron.real), ("adversarial", &atlas.adversarial_url, &neuron.adversarial)] };
    for (kind, url, entries) in strips {
        let strip = view::element(doc, "div", &format!("patches {kind}"), "")?;
        let node = view::element(doc, "span", "kind", if kind == "real" { "real:" } else { "adv.:" })?;
        strip.append_child(&node)?;
        for (k, entry) in entries.iter().enumerate().take(ATLAS_PATCHES) {
            let (x, y) = meta.cell_origin(row, k);
            let patch = view::element(doc, "span", "patch", "")?;
            let side = meta.patch * ATLAS_SCALE;
            patch.set_attribute(
                "style",
                &format!(
                    "width:{side}px;height:{side}px;background-image:url({url});background-size:{}px {}px;background-position:-{}px -{}px",
                    sheet_w * ATLAS_SCALE,
                    sheet_h * ATLAS_SCALE,
                    x * ATLAS_SCALE,
                    y * ATLAS_SCALE
                ),
            )?;
            let title = match entry.target {
                Some(t) => format!("a {} made to look like a {}", class(entry.label), class(t)),
                None => format!("a {}", class(entry.label)),
            };
            patch.set_attribute("title", &title)?;
            patch.set_attribute("data-label", &entry.label.to_string())?;
            strip.append_child(&patch)?;
        }
        block.append_child(&strip)?;
    }
    let node = view::element(doc, "div", "about", &meta.describe(row))?;
    block.append_child(&node)?;
    Ok(block)
}

