//! The model card: what the model is, how it was trained and how well it does.

use web_sys::Element;

use super::LoadedModel;
use crate::dom::El;

pub fn card(model: &LoadedModel) -> Element {
    let spec = &model.info.spec;
    let p = &spec.provenance;
    let mut facts: Vec<(String, String)> = vec![("model".into(), format!("{} ({})", model.entry.title, spec.name))];
    if let Some(url) = &model.entry.file {
        let from = if url.starts_with("blob:") { "a file from your disk (it stays in your browser)".to_string() } else { url.clone() };
        facts.push(("opened from".into(), from));
    }
    if let Some(onnx) = p.extra.get("imported_from").filter(|v| v["format"] == "onnx") {
        let producer = onnx["producer"].as_str().filter(|s| !s.is_empty()).unwrap_or("an unknown tool");
        let pixels = match &onnx["normalisation"] {
            n if n.is_object() => format!("0 to 1, normalised with mean {} and std {} (as chosen when it was opened)", numbers(&n["mean"]), numbers(&n["std"])),
            _ if onnx["pixels"].is_string() => "0 to 255 (it rescales them itself, as Keras's Rescaling does)".into(),
            _ => "0 to 1".into(),
        };
        let mut text = format!("ONNX (opset {}, written by {producer}); the model reads pixels as values from {pixels}", onnx["opset"]);
        if onnx["input_layout"].is_string() {
            text.push_str("; its channels-last layout (Keras, TensorFlow) is read as channels first");
        }
        if let Some(op) = onnx["dropped_output_op"].as_str() {
            text.push_str(&format!("; its final {op} is left out: the page works on the scores before it"));
        }
        facts.push(("imported from".into(), text));
    }
    if let Some(d) = &p.dataset {
        facts.push(("trained on".into(), d.clone()));
    }
    if let Some(m) = &p.training_mode {
        let how = match m.as_str() {
            "standard" => "standard (real images only)".to_string(),
            "pgd" => "PGD adversarial training (Madry et al.): trained on attacked images".to_string(),
            "trades" => "TRADES adversarial training".to_string(),
            "consistent" => "the paper's consistent loss: real and attacked images, and their feature maps pulled together".to_string(),
            other => other.to_string(),
        };
        facts.push(("training".into(), how));
    }
    if let Some(e) = p.epsilon {
        facts.push(("attack budget in training".into(), format!("ε = {e}")));
    }
    if let Some(acc) = p.clean_accuracy {
        facts.push(("test accuracy".into(), format!("{:.2}%", 100.0 * acc)));
    }
    for (attack, acc) in &p.robust_accuracy {
        facts.push((format!("accuracy under {attack}"), format!("{:.1}%", 100.0 * acc)));
    }
    facts.push(("parameters".into(), model.info.parameters.to_string()));
    let layers: Vec<String> = spec
        .nodes
        .iter()
        .map(|n| {
            let shape = model.info.shapes.iter().find(|(name, _)| *name == n.name).map(|(_, s)| s.iter().map(usize::to_string).collect::<Vec<_>>().join("×"));
            format!("{} {} [{}]", n.name, n.op.kind(), shape.unwrap_or_default())
        })
        .collect();
    facts.push(("layers".into(), layers.join(" → ")));
    facts.push(("classes".into(), class_list(model.classes())));
    if let (Some(date), Some(tool)) = (&p.date, &p.tool_version) {
        facts.push(("exported".into(), format!("{date} by {tool}")));
    }
    let list = El::new("dl").children(facts.iter().flat_map(|(k, v)| [El::new("dt").text(k), El::new("dd").text(v)]));
    list.into()
}

/// A JSON list of numbers as people write it: `0.485, 0.456, 0.406`.
fn numbers(list: &serde_json::Value) -> String {
    list.as_array().map(|v| v.iter().filter_map(|x| x.as_f64()).map(|x| format!("{}", x as f32)).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

/// The class names, the first dozen only when there are many (an ImageNet model has 1000).
fn class_list(classes: &[String]) -> String {
    const SHOWN: usize = 12;
    if classes.len() <= SHOWN + 3 {
        return classes.join(", ");
    }
    format!("{}, … ({} in all)", classes[..SHOWN].join(", "), classes.len())
}
