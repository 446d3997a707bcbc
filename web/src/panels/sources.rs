//! "Or use your own image": a drawing area (for one-channel models such as MNIST) and a file
//! upload. Built once per model, so a drawing survives navigation; `own_image.rs` does the work.

use web_sys::Element;

use super::LoadedModel;
use crate::config::DRAW_PX;
use crate::dom::El;

pub const DRAW_CANVAS: &str = "draw-canvas";
pub const UPLOAD_INPUT: &str = "upload";

pub fn sources(model: &LoadedModel) -> Element {
    let [c, h, w] = model.info.input_shape();
    let upload = El::new("div")
        .class("source")
        .add("h3", "", "Upload an image")
        .child(El::new("label").attr("for", UPLOAD_INPUT).text("Choose a PNG, JPEG or GIF file: "))
        .child(El::new("input").id(UPLOAD_INPUT).attr("type", "file").attr("accept", "image/png,image/jpeg,image/gif,image/webp,image/bmp").attr("data-action", "upload"))
        .add(
            "p",
            "note",
            &format!(
                "Any size up to {} megapixels: it is scaled to {w}×{h} pixels (the middle square is kept){}. The network view below shows exactly what the model gets.",
                crate::config::UPLOAD_MAX_PIXELS / 1_000_000,
                if c == 1 { ", made grey, and inverted if it is mostly light (MNIST draws light strokes on black)" } else { "" }
            ),
        );
    let block = El::new("div").class("sources");
    if model.is_concept_world() {
        let concept = El::new("div")
            .class("source")
            .add("h3", "", "A new concept-world image")
            .child(El::new("button").attr("type", "button").attr("data-action", "new-concept").text("Generate one"))
            .add("p", "note", "An object built from parts (walls, roofs, wheels, windows…), drawn in your browser by the same code that made this model's training images; the network view can show where each part is.");
        return block.child(concept).child(upload).into();
    }
    if c != 1 {
        return block.child(upload).into();
    }
    let draw = El::new("div")
        .class("source")
        .add("h3", "", "Draw")
        .child(
            El::new("canvas")
                .id(DRAW_CANVAS)
                .attr("width", &w.to_string())
                .attr("height", &h.to_string())
                .attr("style", &format!("width:{DRAW_PX}px;height:{DRAW_PX}px"))
                .attr("aria-label", "drawing area: draw with the mouse, a pen or a finger"),
        )
        .child(
            El::new("div")
                .class("buttons")
                .child(El::new("button").attr("type", "button").attr("data-action", "use-drawing").text("Classify my drawing"))
                .child(El::new("button").attr("type", "button").attr("data-action", "clear-drawing").text("Clear")),
        )
        .add("p", "note", "Draw a large, centred shape, as in the sample images.");
    block.child(draw).child(upload).into()
}
