//! The attack panel: what an adversarial example is, the attack's controls (kind, budget,
//! steps, target, random start — all in the URL), a button that attacks the current image
//! (disabled while an attack runs), and the result — the images, the perturbation made
//! visible, the probabilities before and after and a plain verdict.

use advlens_shared::tensor::argmax;
use web_sys::Element;

use super::{a, Scene};
use wasm_bindgen::JsCast;

use advlens_shared::attack::{AttackSpec, Norm};

use advlens_shared::attack::AttackChoice;

use crate::attack_params::{AttackParams, MAX_STEPS};
use crate::config::{ATTACK_STEPS, LARGE_PX, TOP_CLASSES};
use crate::dom::{bar, canvas, nav_link, El};
use crate::draw::{l2, linf, perturbation_rgba, to_bytes, to_rgba, top_classes};
use crate::protocol::AttackRow;
use crate::state::{base64url_encode, ImageKind};

/// What the attack panel shows besides a finished attack.
#[derive(Clone, Debug, PartialEq)]
pub enum AttackStatus {
    Idle,
    Running,
    Failed(String),
}

pub fn attack(scene: &Scene, clean: &[f32], status: &AttackStatus, can_cancel: bool) -> Element {
    let model = scene.model;
    let request = scene.state.attack.resolve(model.epsilon(), ATTACK_STEPS);
    let explain = "An adversarial example is an image changed so little that a person sees no difference — each pixel by at most ε, on a scale where black is 0 and white is 1 — in the direction that most changes the model's answer. The attacks below run in your browser; the default budget is the one this model was trained or evaluated at.";
    let running = *status == AttackStatus::Running;
    let button = El::new("button").id("attack-button").attr("type", "button").attr("data-action", "attack").text(if running { "Attacking…" } else { "Attack this image" });
    let button = if running { button.attr("disabled", "").attr("aria-busy", "true") } else { button };
    let state = match (status, scene.attack) {
        (AttackStatus::Running, _) => "running",
        (AttackStatus::Failed(_), _) => "error",
        (_, Some(_)) => "done",
        (AttackStatus::Idle, None) => "idle",
    };
    // Progress and Cancel, shown while an attack runs (`mark_running`, `show_progress`).
    let progress = El::new("div")
        .id("attack-running")
        .class("attack-running")
        .child(El::new("progress").id("attack-progress").attr("max", &request.steps.to_string()).attr("value", "0").attr("aria-label", "attack progress"))
        .child(El::new("span").id("attack-progress-text").text("starting…"));
    let progress = if can_cancel { progress.child(El::new("button").attr("type", "button").attr("data-action", "cancel-attack").text("Cancel")) } else { progress };
    let progress = if running { progress } else { progress.attr("hidden", "") };
    let panel = El::new("div").id("attack-result").attr("data-state", state).add("p", "explain", explain).child(form(scene, &request)).child(button).child(progress);
    match (status, scene.attack) {
        (AttackStatus::Failed(why), _) => panel.add("p", "problem", &format!("The attack could not run: {why}")).into(),
        (_, Some(row)) => panel.child(result(scene, clean, row, &request)).into(),
        _ => panel.into(),
    }
}

const ATTACK_KIND: &str = "attack-kind";
const ATTACK_EPS: &str = "attack-eps";
const ATTACK_STEPS_ID: &str = "attack-steps";
const ATTACK_TARGET: &str = "attack-target";
const ATTACK_SEED: &str = "attack-seed";
const ATTACK_STEP_SIZE: &str = "attack-step-size";

/// The attack's controls, showing the attack of the URL with its defaults filled in.
fn form(scene: &Scene, request: &AttackSpec) -> El {
    let model = scene.model;
    let params = &scene.state.attack;
    let field = |id: &str, label: &str, input: El| El::new("div").class("field").child(El::new("label").attr("for", id).text(label)).child(input.id(id));
    let kinds = El::new("select").children(AttackChoice::ALL.map(|c| {
        let o = El::new("option").attr("value", c.as_str()).text(c.title());
        if c == params.choice { o.attr("selected", "") } else { o }
    }));
    let eps_label = if request.norm == Norm::Linf {
        format!("ε (= {:.1}/255 per pixel)", request.epsilon * 255.0)
    } else {
        "ε (the L2 norm of the change)".to_string()
    };
    let targets = El::new("select").child(El::new("option").attr("value", "").text("none: away from the true class")).children(model.classes().iter().enumerate().map(|(c, name)| {
        let o = El::new("option").attr("value", &c.to_string()).text(name);
        if params.target == Some(c) { o.attr("selected", "") } else { o }
    }));
    let number = |min: &str, value: String| El::new("input").attr("type", "number").attr("min", min).attr("step", "any").attr("value", &value);
    El::new("div")
        .class("attack-form")
        .child(field(ATTACK_KIND, "attack", kinds))
        .child(field(ATTACK_EPS, &eps_label, number("0", request.epsilon.to_string())))
        .child(field(ATTACK_STEPS_ID, &format!("steps (1 to {MAX_STEPS})"), number("1", request.steps.to_string())))
        .child(field(ATTACK_TARGET, "target class", targets))
        .child(field(ATTACK_SEED, "random start: seed (empty: none)", number("0", params.seed.map_or(String::new(), |s| s.to_string()))))
        .child(field(ATTACK_STEP_SIZE, &step_size_label(params.choice, request), number("0", params.step_size.map_or(String::new(), |s| s.to_string()))))
        .child(ensemble_choice(scene))
}

fn step_size_label(choice: AttackChoice, request: &AttackSpec) -> String {
    let usual = choice.step_size(request.epsilon, request.steps);
    if choice == AttackChoice::Ensemble {
        format!("step size: Adam's learning rate (empty: {usual})")
    } else {
        format!("step size (empty: the usual {usual})")
    }
}

const ATTACK_WITH: &str = "attack-with";

/// The ensemble attack's models: the page's other models of the same data, ticked to be
/// attacked together with this one; the unticked ones are held out and judge transfer. Shown
/// only while the ensemble attack is chosen ([`show_kind_fields`]).
fn ensemble_choice(scene: &Scene) -> El {
    let params = &scene.state.attack;
    let explain = "The paper's ensemble attack changes the image so that several models at once see the target class (without one, the class this model finds least likely). Models left unticked never see the attack: if the image fools them too, it transfers — an attacker does not need the model itself.";
    let set = El::new("fieldset").id(ATTACK_WITH).class("attack-with").child(El::new("legend").text("ensemble attack: attack these models together with this one")).add("p", "explain", explain);
    let set = if scene.companions.is_empty() {
        set.add("p", "note", "No other model of this page takes these images: the ensemble is this model alone.")
    } else {
        set.children(scene.companions.iter().map(|e| {
            let id = format!("{ATTACK_WITH}-{}", e.id);
            let input = El::new("input").attr("type", "checkbox").id(&id).attr("value", &e.id).attr("data-with", "");
            let input = if params.with.contains(&e.id) { input.attr("checked", "") } else { input };
            El::new("div").class("check").child(input).child(El::new("label").attr("for", &id).text(&e.title))
        }))
    };
    let unknown: Vec<&str> = params.with.iter().filter(|id| !scene.companions.iter().any(|e| e.id == **id)).map(String::as_str).collect();
    let set = if unknown.is_empty() {
        set
    } else {
        set.add("p", "problem", &format!("Left out: {} — no model of this page that takes these images is called that.", unknown.join(", ")))
    };
    if params.choice == AttackChoice::Ensemble {
        set
    } else {
        set.attr("hidden", "")
    }
}

/// Shows the fields of the attack `kind` (the value of the attack menu) and hides the others.
pub fn show_kind_fields(kind: &str) {
    if let Ok(set) = crate::dom::by_id(ATTACK_WITH) {
        let _ = set.toggle_attribute_with_force("hidden", kind != AttackChoice::Ensemble.as_str());
    }
}

/// The attack the controls describe, or what is wrong with them.
pub fn read_form(classes: usize) -> Result<AttackParams, Vec<String>> {
    let doc = crate::dom::document();
    let value = |id: &str| -> String {
        let Some(e) = doc.get_element_by_id(id) else { return String::new() };
        if let Some(input) = e.dyn_ref::<web_sys::HtmlInputElement>() {
            input.value()
        } else if let Some(select) = e.dyn_ref::<web_sys::HtmlSelectElement>() {
            select.value()
        } else {
            String::new()
        }
    };
    let mut params = AttackParams::default();
    let mut problems = Vec::new();
    for (key, id) in [("attack", ATTACK_KIND), ("eps", ATTACK_EPS), ("steps", ATTACK_STEPS_ID), ("target", ATTACK_TARGET), ("seed", ATTACK_SEED), ("stepsize", ATTACK_STEP_SIZE)] {
        let v = value(id);
        if v.trim().is_empty() {
            continue;
        }
        if let Err(problem) = params.read(key, v.trim()) {
            problems.push(problem.replace(": using the default", ""));
        }
    }
    if params.target.is_some_and(|t| t >= classes) {
        problems.push("the target class is not one of the model's".into());
    }
    if let Ok(boxes) = doc.query_selector_all("input[data-with]") {
        params.with = (0..boxes.length())
            .filter_map(|i| boxes.item(i)?.dyn_into::<web_sys::HtmlInputElement>().ok())
            .filter(|b| b.checked())
            .map(|b| b.value())
            .collect();
    }
    if problems.is_empty() {
        Ok(params)
    } else {
        Err(problems)
    }
}

fn result(scene: &Scene, clean: &[f32], row: &AttackRow, request: &AttackSpec) -> El {
    let model = scene.model;
    let shape = model.info.input_shape();
    let label = scene.label();
    let before = argmax(&row.clean_probabilities);
    let after = argmax(&row.probabilities);
    let change = linf(&row.pixels, clean);
    let says = format!("{} ({:.1}%)", model.class_name(after), 100.0 * row.probabilities[after]);
    let verdict = match (row.success, row.target) {
        (true, _) => {
            let looks = label.map_or("looks the same to us".to_string(), |l| format!("still shows {}", a(&model.class_name(l))));
            format!("The attack succeeded: the model now says {says}, although the image {looks}.")
        }
        (false, Some(t)) => format!("The attack failed: the model resisted and says {says}, not “{}”.", model.class_name(t)),
        (false, None) => format!("The attack failed: the model resisted and still says {says}."),
    };
    let how = format!("Attack: {}.", request.describe(|c| model.class_name(c)));
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
        .attr("data-l2", &l2(&row.pixels, clean).to_string())
        .attr("data-target", &row.target.map_or(String::new(), |t| t.to_string()))
        .attr("data-steps", &row.losses.len().to_string())
        .add("p", if row.success { "verdict success" } else { "verdict resisted" }, &verdict)
        .add("p", "note", &how)
        .child(El::new("div").class("triptych").child(figure(to_rgba(&to_bytes(clean), shape), shape, "real image")).child(El::new("div").id("step-view").class("step-view").children(step_view(scene, clean, row, request))))
        .child(slider(scene, row))
        .child(El::new("div").class("before-after").child(probs("before", &row.clean_probabilities)).child(probs(&format!("after all {} steps", row.steps.len().max(1)), &row.probabilities)))
        .child(companions(scene, row))
        .child(El::new("p").child(look))
}

/// The ensemble attack's other models on the adversarial image: fooled or not, and whether the
/// image transfers to the held-out ones.
fn companions(scene: &Scene, row: &AttackRow) -> El {
    if row.companions.is_empty() {
        return El::new("div").attr("hidden", "");
    }
    let model = scene.model;
    let label = scene.label().unwrap_or_else(|| argmax(&row.clean_probabilities));
    let fooled = |p: &[f32]| match row.target {
        Some(t) => argmax(p) == t,
        None => argmax(p) != label,
    };
    let title = |id: &str| scene.companions.iter().find(|e| e.id == id).map_or_else(|| id.to_string(), |e| e.title.clone());
    let items = row.companions.iter().map(|c| {
        let says = argmax(&c.probabilities);
        let role = if c.attacked { "attacked together" } else { "held out: never saw the attack" };
        let verdict = if fooled(&c.probabilities) { "fooled" } else { "not fooled" };
        let text = format!("“{}” ({role}) says {} ({:.1}%): {verdict}", title(&c.id), model.class_name(says), 100.0 * c.probabilities[says]);
        El::new("li")
            .attr("data-id", &c.id)
            .attr("data-attacked", &c.attacked.to_string())
            .attr("data-predicted", &says.to_string())
            .attr("data-fooled", &fooled(&c.probabilities).to_string())
            .attr("data-probabilities", &c.probabilities.iter().map(f32::to_string).collect::<Vec<_>>().join(","))
            .text(&text)
    });
    let held: Vec<_> = row.companions.iter().filter(|c| !c.attacked).collect();
    let transfer = match (held.len(), held.iter().filter(|c| fooled(&c.probabilities)).count()) {
        (0, _) => "Every other model was attacked together with this one: none is left to show whether the image transfers.".to_string(),
        (1, 0) => "It does not fool the held-out model: this image does not transfer.".to_string(),
        (1, _) => "It fools the held-out model too, which never saw the attack: it transfers.".to_string(),
        (n, 0) => format!("It fools none of the {n} held-out models: this image does not transfer."),
        (n, k) => format!("It fools {k} of the {n} held-out models that never saw the attack: it transfers."),
    };
    El::new("div").class("companions").add("h4", "", "The other models on the adversarial image").child(El::new("ul").children(items)).add("p", "transfer", &transfer)
}

fn figure(rgba: Vec<u8>, shape: [usize; 3], caption: &str) -> El {
    let scale = LARGE_PX / 2.0 / shape[2] as f64;
    El::new("figure").child(canvas(&rgba, shape[2], shape[1], scale, caption)).add("figcaption", "", caption)
}

/// The part of the result that follows the step slider: the change and the image after the
/// shown step, with the model's answer there.
fn step_view(scene: &Scene, clean: &[f32], row: &AttackRow, request: &AttackSpec) -> [El; 3] {
    let shape = scene.model.info.input_shape();
    let total = row.steps.len().max(1);
    let step = if scene.state.image == ImageKind::Adversarial { scene.state.step.unwrap_or(total) } else { total };
    let image = row.image_at(Some(step));
    let change = linf(image, clean);
    let probabilities = if scene.state.image == ImageKind::Adversarial { &scene.look.probabilities } else { &row.probabilities };
    let says = argmax(probabilities);
    let when = if total == 1 { "after the attack".to_string() } else { format!("after step {step} of {total}") };
    let line = format!("{when}: the model says {} ({:.1}%)", scene.model.class_name(says), 100.0 * probabilities[says]);
    [
        figure(perturbation_rgba(image, clean, shape, request.epsilon), shape, &format!("the change {when}, enlarged (grey = none; largest {change:.3})")),
        figure(to_rgba(&to_bytes(image), shape), shape, &format!("adversarial image {when}")),
        El::new("p")
            .id("step-says")
            .class("step-says")
            .attr("data-step", &step.to_string())
            .attr("data-predicted", &says.to_string())
            .attr("data-linf", &change.to_string())
            // The exact image (base64url f32), for tests and embedding pages.
            .attr("data-pixels", &base64url_encode(&image.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()))
            .text(&line),
    ]
}

/// Scrubs through the attack's steps: the views above and below follow.
fn slider(scene: &Scene, row: &AttackRow) -> El {
    let total = row.steps.len();
    if total < 2 {
        return El::new("div").attr("hidden", "");
    }
    let step = if scene.state.image == ImageKind::Adversarial { scene.state.step.unwrap_or(total) } else { total };
    El::new("div")
        .class("field step-field")
        .child(El::new("label").attr("for", "attack-step").text(&format!("Scrub through the attack's {total} steps (the network, the neurons and the images follow)")))
        .child(
            El::new("input")
                .id("attack-step")
                .attr("type", "range")
                .attr("min", "1")
                .attr("max", &total.to_string())
                .attr("value", &step.to_string())
                .attr("data-param", "step")
                .attr("data-key", "attack-step")
                .attr("data-attack", &scene.state.attack_key())
                .attr("aria-valuetext", &format!("step {step} of {total}")),
        )
}

/// While the step slider is in use, the panel is patched instead of redrawn (a redrawn slider
/// would drop the drag): only the step's images and the model's answer change. `false` when the
/// slider shown is for another attack, which needs the whole panel.
pub fn show_step(scene: &Scene, clean: &[f32]) -> bool {
    let (Some(row), Ok(slider), Ok(view)) = (scene.attack, crate::dom::by_id("attack-step"), crate::dom::by_id("step-view")) else { return false };
    if slider.get_attribute("data-attack").as_deref() != Some(&scene.state.attack_key()) || scene.state.image != ImageKind::Adversarial {
        return false;
    }
    let request = scene.state.attack.resolve(scene.model.epsilon(), ATTACK_STEPS);
    crate::dom::replace_children(&view, step_view(scene, clean, row, &request));
    let total = row.steps.len();
    let _ = slider.set_attribute("aria-valuetext", &format!("step {} of {total}", scene.state.step.unwrap_or(total)));
    true
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
    if let Ok(progress) = crate::dom::by_id("attack-running") {
        let _ = progress.remove_attribute("hidden");
    }
}

/// Shows that the running attack has done `done` of its `total` steps.
pub fn show_progress(done: usize, total: usize) {
    if let Ok(bar) = crate::dom::by_id("attack-progress") {
        let _ = bar.set_attribute("max", &total.to_string());
        let _ = bar.set_attribute("value", &done.to_string());
    }
    if let Ok(text) = crate::dom::by_id("attack-progress-text") {
        text.set_text_content(Some(&format!("step {done} of {total}")));
    }
}
