//! The gallery of sample images: one link per sample with its prediction, the current one
//! marked. Wrong predictions say so in text, not only by colour.

use advlens_shared::tensor::argmax;
use web_sys::Element;

use super::{a, LoadedModel};
use crate::config::THUMB_PX;
use crate::dom::{canvas, nav_link, El};
use crate::draw::to_rgba;
use crate::state::PageState;

pub fn gallery(model: &LoadedModel, state: &PageState) -> Element {
    let shape = model.samples.shape;
    if model.samples.samples.is_empty() {
        return El::new("p").class("note").attr("id", "no-samples").text("This model file holds no sample images: draw or upload one below (until then the model looks at a black image).").into();
    }
    let list = El::new("ul").class("gallery");
    let items = model.samples.samples.iter().zip(&model.probabilities).enumerate().map(|(k, (sample, probs))| {
        let predicted = argmax(probs);
        let right = predicted == sample.label;
        let mut s = state.clone();
        s.sample = k;
        s.pixels = None;
        s.concept = None;
        // A new image: its own prediction is what to explain, on the real image.
        s.class = None;
        s.image = Default::default();
        let truth = model.class_name(sample.label);
        let said = model.class_name(predicted);
        let label = if right {
            format!("Sample {k}: {}, predicted correctly ({:.0}%)", a(&truth), 100.0 * probs[predicted])
        } else {
            format!("Sample {k}: {}, predicted wrongly as {said}", a(&truth))
        };
        let link = nav_link(&s.to_query())
            .class(if right { "sample" } else { "sample wrong" })
            .attr("data-key", &format!("sample-{k}"))
            .attr("data-index", &sample.index.to_string())
            .attr("data-label", &sample.label.to_string())
            .attr("data-predicted", &predicted.to_string())
            .attr("aria-label", &label)
            .attr("title", &label)
            .child(canvas(&to_rgba(&sample.pixels, shape), shape[2], shape[1], THUMB_PX / shape[2] as f64, ""))
            .add("span", "said", &if right { said } else { format!("✗ {said}") });
        let link = if k == state.sample && state.pixels.is_none() && state.concept.is_none() { link.attr("aria-current", "true") } else { link };
        El::new("li").child(link)
    });
    list.children(items).into()
}
