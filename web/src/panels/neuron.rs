//! The neuron view: where one neuron fires on the current image, and — from the model's neuron
//! atlas — the real and adversarial image patches that excite it most, with the paper's
//! consistency numbers and their chance level.

use advlens_shared::analysis::atlas::AtlasEntry;
use advlens_shared::analysis::metrics::consistency_chance;
use web_sys::{Element, HtmlImageElement};

use super::{a, LoadedModel, Scene};
use crate::atlas::{Atlas, AtlasState};
use crate::config::{ATLAS_PATCHES, LARGE_PX, PATCH_SCALE};
use crate::dom::{canvas, sprite, El};
use crate::draw::{overlay_rgba, plane_max};

/// The neuron of the URL, else `most_influential` (the top of the trace, once known).
pub fn neuron(scene: &Scene, most_influential: Option<usize>) -> Element {
    let Some(n) = scene.state.neuron.or(most_influential) else {
        return El::new("p").class("hint").text("Click any neuron in the network above, or one of the influential neurons, to open it here.").into();
    };
    let why_this_one = if scene.state.neuron.is_some() {
        "".to_string()
    } else {
        format!("The most influential neuron of {} for this prediction. Click any other neuron to open it here.", scene.layer)
    };
    let Some(maps) = scene.look.layers.iter().find(|m| m.layer == scene.layer) else {
        return El::new("p").class("hint").text("This layer is not shown for this model.").into();
    };
    let model = scene.model;
    let shape = model.info.input_shape();
    let [_, mh, mw] = maps.shape;
    let plane = maps.plane(n);
    let peak = plane_max(plane);
    let layer_max = (0..maps.shape[0]).map(|k| plane_max(maps.plane(k))).fold(0.0, f32::max);
    let overlay = overlay_rgba(scene.image, shape, plane, [mh, mw], layer_max);
    let view = El::new("figure")
        .class("overlay")
        .child(canvas(&overlay, shape[2], shape[1], LARGE_PX / shape[2] as f64, &format!("where neuron {n} of {} fires on {}", scene.layer, scene.image_name())))
        .child(El::new("figcaption").text(&format!("Where it fires on {} (peak {peak:.2}; the layer's strongest response is {layer_max:.2}). ", scene.image_name())).child(legend()));

    let body = El::new("div")
        .class("neuron-view")
        .attr("data-layer", scene.layer)
        .attr("data-channel", &n.to_string())
        .attr("data-max", &peak.to_string())
        .attr("data-chosen", &scene.state.neuron.is_some().to_string())
        .child(El::new("h3").text(&format!("Neuron {n} of layer {}", scene.layer)))
        .add("p", "explain", &why_this_one)
        .child(view);
    let atlas = match scene.atlas {
        AtlasState::Loaded(atlas) => match atlas.meta.row_of(n) {
            Some(row) => atlas_view(model, atlas, row),
            None => El::new("p").class("note").text("The atlas of this layer does not list this neuron."),
        },
        AtlasState::None => El::new("p").class("note").text("This model has no neuron atlas for this layer, so only the activation above is shown. (scripts/make-atlas.sh makes one.)"),
        AtlasState::Broken(why) => El::new("p").class("note problem").attr("data-atlas", "broken").text(&format!("The neuron atlas of this layer could not be used ({why}); the page works without it.")),
    };
    body.child(atlas).into()
}

/// A colour scale from 0 to the strongest response.
fn legend() -> El {
    El::new("span").class("legend").attr("aria-hidden", "true").add("span", "", "0").add("span", "ramp", "").add("span", "", "strongest")
}

fn atlas_view(model: &LoadedModel, atlas: &Atlas, row: usize) -> El {
    let meta = &atlas.meta;
    let neuron = &meta.neurons[row];
    let stats = &neuron.stats;
    let block = El::new("div").class("atlas").attr("data-row", &row.to_string()).attr("data-silent", &stats.silent.to_string());
    if stats.silent {
        return block.add("p", "note", &format!("Silent neuron: fewer than {} of the analysed images make it fire at all, so it has no meaningful top images. Adversarial training silences many neurons.", meta.top_k));
    }
    let chance = consistency_chance(&model.similarity, meta.top_k);
    let top_real = neuron.real.iter().filter(|e| e.label == stats.real_class).count();
    let summary = format!(
        "Of the {} real test images that excite it most, {top_real} show {}. Below: the parts of the images it responds to, real ones and adversarial ones.",
        neuron.real.len(),
        a(&model.class_name(stats.real_class)),
    );
    let numbers = El::new("dl").class("numbers").children(
        [
            ("consistency on real images", format!("{:.2}", stats.consis_real), "1 = its top images all show one class"),
            ("consistency on adversarial images (true classes)", format!("{:.2}", stats.consis_adv_source), "low = it also fires on adversarial images of other classes"),
            ("chance level", format!("{chance:.2}"), &*format!("what a neuron that ignores classes would score with its top {}", meta.top_k)),
            ("CS1 (real vs adversarial, by true class)", format!("{:.2}", stats.cs1), "near 1 = the same classes excite it in both"),
        ]
        .into_iter()
        .chain(stats.cs2.map(|cs2| ("CS2 (by the class the model was fooled into)", format!("{cs2:.2}"), "near 1 = adversarial images excite it as their fake class would")))
        .flat_map(|(k, v, why)| [El::new("dt").text(k), El::new("dd").text(&v).add("small", "", &format!(" — {why}"))]),
    );
    let numbers = match (&stats.concept, &stats.concept_adv) {
        (Some((cat, name, iou)), adv) => {
            let adv = adv.as_ref().map_or(String::new(), |(c, n, i)| format!("; on adversarial images {c}:{n} (IoU {i:.2})"));
            numbers.child(El::new("dt").text("best concept")).child(El::new("dd").text(&format!("{cat}:{name} (IoU {iou:.2}){adv}")))
        }
        _ => numbers,
    };
    block
        .attr("data-consis-real", &stats.consis_real.to_string())
        .attr("data-consis-adv", &stats.consis_adv_source.to_string())
        .attr("data-chance", &chance.to_string())
        .add("p", "", &summary)
        .child(strip(model, meta.patch, meta, &atlas.real, row, &neuron.real, "real", "Top real images"))
        .child(strip(model, meta.patch, meta, &atlas.adversarial, row, &neuron.adversarial, "adversarial", "Top adversarial images (each changed invisibly to fool the model)"))
        .child(histogram(model, &neuron.real, &neuron.adversarial))
        .child(numbers)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn strip(model: &LoadedModel, side: usize, meta: &advlens_shared::analysis::atlas::AtlasMeta, sheet: &HtmlImageElement, row: usize, entries: &[AtlasEntry], kind: &str, title: &str) -> El {
    let figures = entries.iter().enumerate().take(ATLAS_PATCHES).map(|(k, e)| {
        let (x, y) = meta.cell_origin(row, k);
        let caption = match e.target {
            Some(t) => format!("{} made to look like {}", a(&model.class_name(e.label)), a(&model.class_name(t))),
            None => a(&model.class_name(e.label)),
        };
        El::new("figure")
            .class("patch")
            .attr("data-label", &e.label.to_string())
            .attr("data-x", &x.to_string())
            .attr("data-y", &y.to_string())
            .child(sprite(sheet, x, y, side, PATCH_SCALE.max(96 / side.max(1)), &caption))
            .add("figcaption", "", &caption)
    });
    El::new("div").class(&format!("patches {kind}")).add("h4", "", title).child(El::new("div").class("strip").children(figures))
}

/// The class histograms behind consis and CS: how many of the top real images, of the top
/// adversarial images by true class, and by the class the model was fooled into, show each class.
fn histogram(model: &LoadedModel, real: &[AtlasEntry], adversarial: &[AtlasEntry]) -> El {
    let classes = model.classes().len();
    let count = |labels: &mut dyn Iterator<Item = usize>| {
        let mut h = vec![0usize; classes];
        labels.filter(|&l| l < classes).for_each(|l| h[l] += 1);
        h
    };
    let columns = [
        ("real images", count(&mut real.iter().map(|e| e.label))),
        ("adversarial, true class", count(&mut adversarial.iter().map(|e| e.label))),
        ("adversarial, fooled into", count(&mut adversarial.iter().filter_map(|e| e.target))),
    ];
    let most = columns.iter().flat_map(|(_, h)| h.iter().copied()).max().unwrap_or(1).max(1);
    let head = El::new("tr").child(El::new("th").attr("scope", "col").text("class")).children(columns.iter().map(|(name, _)| El::new("th").attr("scope", "col").text(name)));
    let rows = (0..classes).filter(|&c| columns.iter().any(|(_, h)| h[c] > 0)).map(|c| {
        El::new("tr").child(El::new("th").attr("scope", "row").text(&model.class_name(c))).children(columns.iter().map(|(_, h)| {
            let width = 100.0 * h[c] as f64 / most as f64;
            El::new("td")
                .attr("data-count", &h[c].to_string())
                .child(El::new("span").class("count-bar").attr("style", &format!("width:{width:.0}%")))
                .add("span", "count", &h[c].to_string())
        }))
    });
    El::new("table")
        .class("histogram")
        .child(El::new("caption").text("Classes of its top images (the histograms behind the numbers below)"))
        .child(El::new("thead").child(head))
        .child(El::new("tbody").children(rows))
}
