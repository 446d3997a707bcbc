//! The network view: the image, every layer's channels as small heat maps for that image (each
//! a link to its neuron view), and the prediction with its probabilities.

use web_sys::Element;

use super::{a, Scene};
use crate::config::{CHANNEL_PX, GRID_COLUMNS, LARGE_PX};
use crate::dom::{bar, canvas, narrow_screen, nav_link, El};
use crate::draw::{channel_grid, grid_cell, plane_max, to_bytes, to_rgba};
use crate::state::ImageKind;

pub fn network(scene: &Scene) -> Element {
    let model = scene.model;
    let shape = model.info.input_shape();
    let predicted = scene.predicted();
    let probs = &scene.look.probabilities;
    let label = scene.label();

    // Real or adversarial: two links, the current one marked.
    let switch = El::new("nav").class("switch").attr("aria-label", "which image the views show").children([(ImageKind::Real, "real image"), (ImageKind::Adversarial, "adversarial image")].map(|(kind, text)| {
        let link = nav_link(&scene.href(|s| {
            s.image = kind;
            s.class = None;
        }))
        .text(text)
        .attr("data-key", &format!("switch-{text}"));
        if scene.state.image == kind { link.attr("aria-current", "true") } else { link }
    }));

    let image = canvas(&to_rgba(&to_bytes(scene.image), shape), shape[2], shape[1], LARGE_PX / 2.0 / shape[2] as f64, &format!("{} ({})", scene.image_name(), scene.image_origin()));
    let _ = image.set_attribute("id", crate::concept_view::INPUT_CANVAS);
    // A concept-world image comes with its part masks: boxes to draw them over it.
    let parts = scene.state.concept.map(|n| {
        let generated = crate::concept_view::generate(shape[1], n);
        El::new("fieldset").class("parts").child(El::new("legend").text("Show its parts")).children(crate::concept_view::parts_present(&generated).into_iter().map(|(k, name)| {
            El::new("label").child(El::new("input").attr("type", "checkbox").attr("data-part", &k.to_string())).add("span", "", &format!(" {name}"))
        }))
    });
    let says = format!("The model says {} ({:.1}%)", model.class_name(predicted), 100.0 * probs[predicted]);
    let verdict = match label {
        None => format!("{says}."),
        Some(l) if l == predicted => format!("{says} — right."),
        Some(l) => format!("{says} — wrong: this is {}.", a(&model.class_name(l))),
    };
    let bars = El::new("div").class("bars").attr("aria-label", "probability of each class").children(probs.iter().enumerate().map(|(c, &p)| {
        let class = if c == predicted { "predicted" } else if Some(c) == label { "truth" } else { "" };
        bar(&model.class_name(c), p, &format!("{:.1}%", 100.0 * p), class)
    }));
    let head = El::new("div")
        .class("input-row")
        .child(El::new("figure").child(image).add("figcaption", "", &format!("Input: {}", scene.image_name())).children(parts))
        .child(El::new("div").class("prediction").attr("data-predicted", &predicted.to_string()).add("p", "verdict", &verdict).child(bars));

    let layers = El::new("div").class("layers").children(scene.look.layers.iter().enumerate().map(|(depth, maps)| {
        let [c, h, w] = maps.shape;
        let max = (0..c).map(|k| plane_max(maps.plane(k))).fold(0.0, f32::max);
        let what = match depth {
            0 => " — early neurons respond to edges and strokes",
            d if d + 1 == scene.look.layers.len() => " — late neurons respond to larger patterns; the classifier reads these",
            _ => "",
        };
        // One canvas holds the layer's maps; each neuron is a link laid over its cell.
        // Half the columns on a phone: cells twice as large to tap.
        let cols = c.min(if narrow_screen() { GRID_COLUMNS / 2 } else { GRID_COLUMNS });
        let gap = (w.max(h) / 8).max(1);
        let (rgba, gw, gh) = channel_grid(&maps.data, maps.shape, max, cols, gap);
        let scale = CHANNEL_PX / w.max(h) as f64;
        let pct = |v: usize, of: usize| format!("{:.4}%", 100.0 * v as f64 / of as f64);
        let sheet = canvas(&rgba, gw, gh, scale, "");
        let channels = El::new("div").class("channels").attr("style", &format!("width:{}px", (gw as f64 * scale).round())).child(sheet).children((0..c).map(|k| {
            let (x, y) = grid_cell(k, cols, [h, w], gap);
            let peak = plane_max(maps.plane(k));
            let selected = scene.state.neuron == Some(k) && scene.layer == maps.layer;
            let link = nav_link(&scene.href(|s| {
                s.layer = Some(maps.layer.clone());
                s.neuron = Some(k);
            }))
            .class(if selected { "channel selected" } else { "channel" })
            .attr("data-key", &format!("n-{}-{k}", maps.layer))
            .attr("data-layer", &maps.layer)
            .attr("data-channel", &k.to_string())
            .attr("data-max", &peak.to_string())
            .attr("aria-label", &format!("{} neuron {k}: peak response {peak:.2}", maps.layer))
            .attr("title", &format!("{} neuron {k} (peak {peak:.2})", maps.layer))
            .attr("style", &format!("left:{};top:{};width:{};height:{}", pct(x, gw), pct(y, gh), pct(w, gw), pct(h, gh)));
            if selected { link.attr("aria-current", "true") } else { link }
        }));
        El::new("section")
            .class("layer")
            .attr("data-layer", &maps.layer)
            .child(El::new("h3").text(&format!("{} · {c} neurons · {h}×{w} maps", maps.layer)).add("small", "", what))
            .child(channels)
    }));

    El::new("div")
        .child(switch)
        .child(head)
        .add("p", "explain", "Each small square below is one neuron (a channel of a convolutional layer): where it is bright, the neuron responds strongly to that part of the image. Brightness is comparable within a layer. Click a neuron to open it.")
        .child(layers)
        .into()
}
