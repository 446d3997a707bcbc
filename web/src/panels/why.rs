//! "Why this prediction?": the neurons of one layer with the largest effect on the explained
//! class — the exact drop of its score when the neuron is silenced, and gradient x activation —
//! each linked to its neuron view. The layer and the class are choices (explain the true class
//! to see what spoke against it). On an adversarial image, the same neurons aligned before and
//! after the attack: which gained influence on the class, which lost it.

use advlens_shared::analysis::trace::{shifts, Influence};
use web_sys::Element;

use super::Scene;
use crate::atlas::AtlasState;
use crate::config::{CHANNEL_PX, TOP_NEURONS};
use crate::dom::{canvas, nav_link, El};
use crate::draw::{heat_rgba, plane_max};
use crate::state::ImageKind;

/// The controls and, once traced, the list; `trace` is `None` while it is being computed.
/// `before` is the real image's trace for the same layer and class, when the views show the
/// adversarial image (`None` while it is being computed).
pub fn why(scene: &Scene, trace: Option<&[Influence]>, before: Option<&[Influence]>) -> Element {
    let model = scene.model;
    let predicted = scene.predicted();
    let layer_select = El::new("select").id("why-layer").attr("data-param", "layer").children(model.layers.iter().map(|(name, [c, _, _])| {
        let o = El::new("option").attr("value", name).text(&format!("{name} ({c} neurons)"));
        if name == scene.layer { o.attr("selected", "") } else { o }
    }));
    let class_select = El::new("select").id("why-class").attr("data-param", "class").child({
        let o = El::new("option").attr("value", "").text(&format!("the predicted class ({})", model.class_name(predicted)));
        if scene.state.class.is_none() { o.attr("selected", "") } else { o }
    });
    let class_select = class_select.children(model.classes().iter().enumerate().map(|(c, name)| {
        let mark = if Some(c) == scene.label() { " (true class)" } else { "" };
        let o = El::new("option").attr("value", &c.to_string()).text(&format!("{name}{mark}"));
        if scene.state.class == Some(c) { o.attr("selected", "") } else { o }
    }));
    let controls = El::new("div")
        .class("controls")
        .child(El::new("label").attr("for", "why-layer").text("Layer "))
        .child(layer_select)
        .child(El::new("label").attr("for", "why-class").text(" explain "))
        .child(class_select);
    let class_name = model.class_name(scene.class);
    let intro = format!(
        "The neurons of {} that pushed the model most towards “{class_name}” on {}: silencing one (setting it to zero) lowers the class's score by the amount shown — computed exactly, one forward pass per neuron.",
        scene.layer,
        scene.image_name()
    );
    let body = El::new("div").attr("data-layer", scene.layer).attr("data-class", &scene.class.to_string()).child(controls).add("p", "explain", &intro);
    let Some(trace) = trace else {
        return body.attr("data-state", "running").add("p", "pending", "Tracing…").into();
    };
    let maps = scene.look.layers.iter().find(|m| m.layer == scene.layer);
    let layer_max = maps.map_or(1.0, |m| (0..m.shape[0]).map(|k| plane_max(m.plane(k))).fold(0.0, f32::max));
    let top_drop = trace.first().map_or(1.0, |r| r.logit_drop.abs().max(1e-6));
    let atlas = match scene.atlas {
        AtlasState::Loaded(atlas) => Some(atlas),
        _ => None,
    };
    let list = El::new("ol").class("influences").children(trace.iter().take(TOP_NEURONS).map(|r| {
        let thumb = maps.map(|m| canvas(&heat_rgba(m.plane(r.channel), layer_max), m.shape[2], m.shape[1], CHANNEL_PX / m.shape[2].max(m.shape[1]) as f64, ""));
        let link = nav_link(&scene.href(|s| s.neuron = Some(r.channel)))
            .class("neuron-link")
            .attr("data-key", &format!("why-{}-{}", scene.layer, r.channel))
            .attr("aria-label", &format!("open neuron {} of {}", r.channel, scene.layer))
            .children(thumb)
            .add("span", "", &format!("neuron {}", r.channel));
        let effect = if r.logit_drop >= 0.0 {
            format!("silencing it lowers the score of {class_name} by {:.2}", r.logit_drop)
        } else {
            format!("silencing it raises the score of {class_name} by {:.2}", -r.logit_drop)
        };
        let probability = if (100.0 * r.prob_drop).abs() >= 0.05 { format!(" (probability {:+.1} points)", -100.0 * r.prob_drop) } else { String::new() };
        let mut detail = format!("{effect}{probability}; gradient × activation {:.2}", r.grad_x_act);
        if let Some(row) = atlas.and_then(|at| at.meta.row_of(r.channel).map(|row| &at.meta.neurons[row])) {
            if row.stats.silent {
                detail += "; silent on most images";
            } else {
                detail += &format!("; its top real images are mostly “{}”", model.class_name(row.stats.real_class));
            }
        }
        // On an adversarial image: how the neuron responded to the real one (the paper's point:
        // neurons of the fake class fire although nothing of that class was added).
        let real_peak = scene.real_look.and_then(|l| l.layers.iter().find(|m| m.layer == scene.layer)).map(|m| plane_max(m.plane(r.channel)));
        if let Some(before) = real_peak {
            detail += &format!(". Its response: {before:.2} on the real image, {:.2} on the adversarial one", r.activation);
        }
        let width = (100.0 * r.logit_drop.max(0.0) / top_drop).clamp(0.5, 100.0);
        El::new("li")
            .class("influence")
            .attr("data-channel", &r.channel.to_string())
            .attr("data-logit-drop", &r.logit_drop.to_string())
            .attr("data-grad-x-act", &r.grad_x_act.to_string())
            .attr("data-prob-drop", &r.prob_drop.to_string())
            .attr("data-activation", &r.activation.to_string())
            .attr("data-real-activation", &real_peak.map_or(String::new(), |v| v.to_string()))
            .child(link)
            .child(El::new("span").class("track").child(El::new("span").class("fill").attr("style", &format!("width:{width:.1}%"))))
            .add("span", "detail", &detail)
    }));
    let body = body.attr("data-state", "done").child(list);
    match scene.state.image {
        ImageKind::Adversarial => body.child(aligned(scene, before, trace)).into(),
        ImageKind::Real => body.into(),
    }
}

/// The neurons whose influence on the class changed most between the real and the adversarial
/// image, each with both numbers.
fn aligned(scene: &Scene, before: Option<&[Influence]>, after: &[Influence]) -> El {
    let class_name = scene.model.class_name(scene.class);
    let section = El::new("div")
        .class("aligned")
        .add("h3", "", "Before and after the attack")
        .add("p", "explain", &format!("The same neurons on the real image and on the adversarial one: how much each pushes towards “{class_name}” (its score's drop when silenced). Gained: the attack made it speak for “{class_name}”; lost: it speaks less."));
    let Some(before) = before else {
        return section.attr("data-state", "running").add("p", "pending", "Tracing the real image…");
    };
    let head = El::new("tr").children(["neuron", "real image", "adversarial image", "change"].map(|h| El::new("th").attr("scope", "col").text(h)));
    let rows = shifts(before, after).into_iter().take(TOP_NEURONS * 2).map(|s| {
        let (word, class) = match s.change() {
            d if d > 0.0 => ("gained", "gained"),
            d if d < 0.0 => ("lost", "lost"),
            _ => ("same", ""),
        };
        let link = nav_link(&scene.href(|st| st.neuron = Some(s.channel))).attr("data-key", &format!("shift-{}-{}", scene.layer, s.channel)).text(&format!("{} [{}]", scene.layer, s.channel));
        El::new("tr")
            .class("shift")
            .attr("data-channel", &s.channel.to_string())
            .attr("data-before", &s.before.to_string())
            .attr("data-after", &s.after.to_string())
            .child(El::new("th").attr("scope", "row").child(link))
            .child(El::new("td").text(&format!("{:.2}", s.before)))
            .child(El::new("td").text(&format!("{:.2}", s.after)))
            .child(El::new("td").class(class).text(&format!("{:+.2} {word}", s.change())))
    });
    section.attr("data-state", "done").child(El::new("table").class("shifts").child(El::new("thead").child(head)).child(El::new("tbody").children(rows)))
}
