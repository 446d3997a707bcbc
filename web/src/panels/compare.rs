//! The comparison panel: a chooser of the model to compare with and, once computed, the two
//! models side by side on the same image — predictions, whether the attack made on the explored
//! model fools the other (transfer) and whether the other resists the same attack made for it,
//! and each model's most influential neurons with their top real and adversarial patches and
//! consistency against the chance level.

use advlens_shared::analysis::metrics::consistency_chance;
use advlens_shared::tensor::argmax;
use web_sys::Element;

use super::neuron::strip;
use super::{LoadedModel, Scene};
use crate::atlas::AtlasState;
use crate::compare::Side;
use crate::config::CatalogEntry;
use crate::dom::{nav_link, El};
use crate::state::ImageKind;

/// What the panel shows besides the chooser.
pub enum CompareState<'a> {
    /// No model chosen.
    None,
    /// Being computed.
    Running(&'a LoadedModel),
    /// Both sides.
    Done(&'a LoadedModel, &'a Side, &'a Side),
    /// Why there is nothing to show.
    Problem(String),
}

pub fn compare(scene: &Scene, catalog: &[CatalogEntry], shown: CompareState) -> Element {
    let chosen = scene.state.compare.as_deref();
    let options = El::new("option").attr("value", "").text("no other model");
    let options = std::iter::once(options).chain(catalog.iter().filter(|e| e.id != scene.model.entry.id).map(|e| {
        let o = El::new("option").attr("value", &e.id).text(&e.title);
        if Some(e.id.as_str()) == chosen { o.attr("selected", "") } else { o }
    }));
    let chooser = El::new("div")
        .class("controls")
        .child(El::new("label").attr("for", "compare-model").text("Compare “").child(El::new("span").text(&scene.model.entry.title)).child(El::new("span").text("” with ")))
        .child(El::new("select").id("compare-model").attr("data-param", "compare").children(options));
    let explain = "Two models on the same image. On the adversarial image, the second model sees the image made to fool the first: does the attack transfer? And does it resist the same attack made for itself? Training with the paper's consistent loss should make neurons fire for their class, not for the attack's pattern.";
    let body = El::new("div").id("compare-view").child(chooser).add("p", "explain", explain);
    match shown {
        CompareState::None => body.attr("data-state", "idle").into(),
        CompareState::Running(other) => body.attr("data-state", "running").add("p", "pending", &format!("Running “{}” on this image…", other.entry.title)).into(),
        CompareState::Problem(why) => body.attr("data-state", "error").add("p", "problem", &why).into(),
        CompareState::Done(other, a, b) => body
            .attr("data-state", "done")
            .child(El::new("div").class("compare-grid").child(column(scene, scene.model, a, true)).child(column(scene, other, b, false)))
            .into(),
    }
}

/// One model's column.
fn column(scene: &Scene, model: &LoadedModel, side: &Side, explored: bool) -> El {
    let label = scene.label();
    let says = argmax(&side.probabilities);
    let says_text = format!("{} ({:.1}%)", model.class_name(says), 100.0 * side.probabilities[says]);
    let adversarial = scene.state.image == ImageKind::Adversarial;
    let fooled = |predicted: usize, target: Option<usize>| match (target, label) {
        (Some(t), _) => predicted == t,
        (None, Some(l)) => predicted != l,
        (None, None) => false,
    };
    let target = scene.attack.and_then(|r| r.target);
    let mut lines = Vec::new();
    let column = El::new("section").class("side").attr("data-model", &model.entry.id).attr("data-predicted", &says.to_string()).attr("data-probability", &side.probabilities[says].to_string());
    let column = match (adversarial, explored) {
        (false, _) => {
            lines.push(format!("On {}: {says_text}.", scene.image_name()));
            column
        }
        (true, true) => {
            lines.push(format!("On the adversarial image made for it: {says_text}."));
            column
        }
        (true, false) => {
            let transferred = fooled(says, target);
            lines.push(format!(
                "On the same adversarial image (made for “{}”): {says_text} — {}",
                scene.model.entry.title,
                if transferred { "the attack transfers: it is fooled too." } else { "the attack does not transfer." }
            ));
            column.attr("data-transfer", &transferred.to_string())
        }
    };
    let column = match (&side.own_attack, explored) {
        (Some(row), false) => {
            let own = argmax(&row.probabilities);
            lines.push(format!(
                "The same attack made for it: {} ({:.1}%) — {}",
                model.class_name(own),
                100.0 * row.probabilities[own],
                if row.success { "it is fooled." } else { "it resists." }
            ));
            column.attr("data-own-predicted", &own.to_string()).attr("data-own-success", &row.success.to_string())
        }
        _ => column,
    };
    let open = nav_link(&scene.href(|s| {
        s.model = Some(model.entry.id.clone());
        s.bundle = None;
        s.compare = Some(scene.model.entry.id.clone());
        s.layer = None;
        s.neuron = None;
        s.class = None;
    }));
    let heading = El::new("h3").text(&model.entry.title);
    let heading = if explored { heading } else { heading.child(El::new("small").text(" ").child(open.attr("data-key", "compare-swap").text("explore this one ⇄"))) };
    let atlas = match &*side.atlas {
        AtlasState::Loaded(at) => Some(at),
        _ => None,
    };
    let neurons = side.top.iter().map(|r| {
        let title = format!("neuron {} of {}: silencing it lowers the score of {} by {:.2}", r.channel, side.layer, model.class_name(side.class), r.logit_drop);
        let item = El::new("li").class("compare-neuron").attr("data-channel", &r.channel.to_string()).attr("data-logit-drop", &r.logit_drop.to_string()).add("p", "", &title);
        match atlas.and_then(|at| at.meta.row_of(r.channel).map(|row| (at, row))) {
            Some((at, row)) if !at.meta.neurons[row].stats.silent => {
                let stats = &at.meta.neurons[row].stats;
                let chance = consistency_chance(&model.similarity, at.meta.top_k);
                item.attr("data-consis-real", &stats.consis_real.to_string())
                    .add("p", "note", &format!("consistency {:.2} on real images, {:.2} on adversarial ones (chance {chance:.2}); its top real images are mostly “{}”", stats.consis_real, stats.consis_adv_source, model.class_name(stats.real_class)))
                    .child(strip(model, at.meta.patch, &at.meta, &at.real, row, &at.meta.neurons[row].real, "real", "top real images"))
                    .child(strip(model, at.meta.patch, &at.meta, &at.adversarial, row, &at.meta.neurons[row].adversarial, "adversarial", "top adversarial images"))
            }
            Some(_) => item.add("p", "note", "silent on most images (no top images)"),
            None => item,
        }
    });
    column
        .child(heading)
        .children(lines.iter().map(|l| El::new("p").text(l)))
        .add("h4", "", &format!("Its most influential neurons ({}, for “{}”)", side.layer, model.class_name(side.class)))
        .child(El::new("ol").class("compare-neurons").children(neurons))
}
