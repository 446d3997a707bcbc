//! The attack panel: what an adversarial example is, a button that attacks the current sample
//! (disabled while an attack runs), and the result — the images, the perturbation made
//! visible, the probabilities before and after and a plain verdict.

use advlens_shared::tensor::argmax;
use web_sys::Element;

use super::{a, Scene};
use crate::config::{ATTACK_STEPS, LARGE_PX, TOP_CLASSES};
use crate::dom::{bar, canvas, nav_link, El};
use crate::draw::{linf, perturbation_rgba, to_bytes, to_rgba, top_classes};
use crate::protocol::AttackRow;
use crate::state::ImageKind;

/// What the attack panel shows besides a finished attack.
#[derive(Clone, Debug, PartialEq)]
pub enum AttackStatus {
    Idle,
    Running,
    Failed(String),
}

pub fn attack(scene: &Scene, clean: &[f32], status: &AttackStatus) -> Element {
    let model = scene.model;
    let epsilon = model.epsilon();
    let explain = format!(
        "An adversarial example is an image changed by at most ε = {epsilon} per pixel (on a 0–1 scale) — too little to change what a person sees — in the direction that most changes the model's answer. This attack takes {ATTACK_STEPS} such steps (projected gradient descent, PGD), computed in your browser."
    );
    let running = *status == AttackStatus::Running;
    let button = El::new("button").id("attack-button").attr("type", "button").attr("data-action", "attack").text(if running { "Attacking…" } else { "Attack this image" });
    let button = if running { button.attr("disabled", "").attr("aria-busy", "true") } else { button };
    let state = match (status, scene.attack) {
        (AttackStatus::Running, _) => "running",
        (AttackStatus::Failed(_), _) => "error",
        (_, Some(_)) => "done",
        (AttackStatus::Idle, None) => "idle",
    };
    let panel = El::new("div").id("attack-result").attr("data-state", state).add("p", "explain", &explain).child(button);
    match (status, scene.attack) {
        (AttackStatus::Failed(why), _) => panel.add("p", "problem", &format!("The attack could not run: {why}")).into(),
        (_, Some(row)) => panel.child(result(scene, clean, row, epsilon)).into(),
        _ => panel.into(),
    }
}

fn result(scene: &Scene, clean: &[f32], row: &AttackRow, epsilon: f32) -> El {
    let model = scene.model;
    let shape = model.info.input_shape();
    let label = scene.label();
    let before = argmax(&row.clean_probabilities);
    let after = argmax(&row.probabilities);
    let change = linf(&row.pixels, clean);
    let scale = LARGE_PX / 2.0 / shape[2] as f64;
    let verdict = if row.success {
        let looks = label.map_or("looks the same to us".to_string(), |l| format!("still shows {}", a(&model.class_name(l))));
        format!("The attack succeeded: the model now says {} ({:.1}%), although the image {looks}.", model.class_name(after), 100.0 * row.probabilities[after])
    } else {
        format!("The attack failed: the model resisted and still says {} ({:.1}%).", model.class_name(after), 100.0 * row.probabilities[after])
    };
    let figure = |rgba: Vec<u8>, caption: &str| {
        El::new("figure").child(canvas(&rgba, shape[2], shape[1], scale, caption)).add("figcaption", "", caption)
    };
    let probs = |title: &str, p: &[f32]| {
        El::new("div").class("bars").add("h4", "", title).children(top_classes(p, TOP_CLASSES).into_iter().map(|(c, v)| bar(&model.class_name(c), v, &format!("{:.1}%", 100.0 * v), if Some(c) == label { "truth" } else { "" })))
    };
    let look = match scene.state.image {
        ImageKind::Real => nav_link(&scene.href(|s| {
            s.image = ImageKind::Adversarial;
            s.class = None;
        }))
        .attr("data-key", "look-adversarial")
        .text("Look inside the adversarial image: which neurons changed? →"),
        ImageKind::Adversarial => nav_link(&scene.href(|s| {
            s.image = ImageKind::Real;
            s.class = None;
        }))
        .attr("data-key", "look-real")
        .text("← Back to the real image"),
    };
    El::new("div")
        .class("attack-outcome")
        .attr("data-success", &row.success.to_string())
        .attr("data-predicted", &after.to_string())
        .attr("data-before", &before.to_string())
        .attr("data-linf", &change.to_string())
        .attr("data-steps", &row.losses.len().to_string())
        .add("p", if row.success { "verdict success" } else { "verdict resisted" }, &verdict)
        .child(
            El::new("div")
                .class("triptych")
                .child(figure(to_rgba(&to_bytes(clean), shape), "real image"))
                .child(figure(perturbation_rgba(&row.pixels, clean, shape, epsilon), &format!("the change, enlarged (grey = none; largest {change:.3})")))
                .child(figure(to_rgba(&to_bytes(&row.pixels), shape), "adversarial image")),
        )
        .child(El::new("div").class("before-after").child(probs("before", &row.clean_probabilities)).child(probs("after", &row.probabilities)))
        .child(El::new("p").child(look))
}

/// Marks the panel busy at once, before the worker answers: the button is disabled so that
/// no second click starts a second attack.
pub fn mark_running() {
    if let Ok(button) = crate::dom::by_id("attack-button") {
        let _ = button.set_attribute("disabled", "");
        let _ = button.set_attribute("aria-busy", "true");
        button.set_text_content(Some("Attacking…"));
    }
    if let Ok(result) = crate::dom::by_id("attack-result") {
        let _ = result.set_attribute("data-state", "running");
    }
}
