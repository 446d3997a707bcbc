//! Concept-world images generated in the page (`?concept=n`), by the same code that made the
//! concept-world training set, and their part masks drawn over them on request.

use advlens_shared::concepts::vocab::PARTS;
use advlens_shared::concepts::{ConceptImage, ConceptWorld};
use wasm_bindgen::{Clamped, JsCast};

use crate::draw::to_rgba;

/// The seed of the page's concept-world images: not one the training or test sets use.
pub const CONCEPT_SEED: u64 = 1_000_003;
/// The id of the input image's canvas in the network view.
pub const INPUT_CANVAS: &str = "input-canvas";

/// Image `n` of the page's seed at `side` pixels (32 when the side is not one the world draws).
pub fn generate(side: usize, n: u64) -> ConceptImage {
    ConceptWorld::new(side).unwrap_or_default().generate(CONCEPT_SEED, n)
}

/// The part types that cover at least one pixel of the image, with their names.
pub fn parts_present(image: &ConceptImage) -> Vec<(usize, &'static str)> {
    let all = image.parts.iter().fold(0u32, |a, &b| a | b);
    PARTS.iter().enumerate().filter(|(k, _)| all & (1 << k) != 0).map(|(k, p)| (k, p.name)).collect()
}

/// RGBA of the image with the pixels of `parts` tinted and the rest dimmed; the plain image when
/// `parts` is empty.
pub fn overlay(image: &ConceptImage, parts: &[usize]) -> Vec<u8> {
    let side = image.side;
    let mut rgba = to_rgba(&image.pixels, [3, side, side]);
    if parts.is_empty() {
        return rgba;
    }
    let mask = parts.iter().fold(0u32, |m, &k| m | (1 << k));
    for (i, px) in rgba.chunks_mut(4).enumerate() {
        let on = image.parts[i] & mask != 0;
        for (c, tint) in px.iter_mut().take(3).zip([0.0f32, 230.0, 255.0]) {
            let v = f32::from(*c);
            *c = if on { (0.45 * v + 0.55 * tint).round() as u8 } else { (0.3 * v).round() as u8 };
        }
    }
    rgba
}

/// Redraws the network view's input canvas with the parts whose boxes are ticked.
pub fn redraw(side: usize, n: u64) {
    let doc = crate::dom::document();
    let Ok(boxes) = doc.query_selector_all("input[data-part]:checked") else { return };
    let parts: Vec<usize> = (0..boxes.length())
        .filter_map(|i| boxes.get(i)?.dyn_into::<web_sys::Element>().ok()?.get_attribute("data-part")?.parse().ok())
        .collect();
    let Some(canvas) = doc.get_element_by_id(INPUT_CANVAS).and_then(|c| c.dyn_into::<web_sys::HtmlCanvasElement>().ok()) else { return };
    let image = generate(side, n);
    let rgba = overlay(&image, &parts);
    let Some(ctx) = canvas.get_context("2d").ok().flatten().and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok()) else { return };
    if let Ok(data) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), image.side as u32, image.side as u32) {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
    let _ = canvas.set_attribute("data-parts", &parts.iter().map(usize::to_string).collect::<Vec<_>>().join(","));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_images_are_the_generators_and_their_parts_overlay_only_their_pixels() {
        let image = generate(32, 5);
        assert_eq!(image, ConceptWorld::new(32).unwrap().generate(CONCEPT_SEED, 5), "the same bytes as the generator");
        assert_eq!(image.class, 5 % ConceptWorld::default().classes().len());
        let present = parts_present(&image);
        assert!(!present.is_empty());
        let (k, _) = present[0];
        let plain = overlay(&image, &[]);
        assert_eq!(plain, to_rgba(&image.pixels, [3, 32, 32]));
        let tinted = overlay(&image, &[k]);
        for i in 0..32 * 32 {
            let on = image.parts[i] & (1 << k) != 0;
            let changed = tinted[4 * i..4 * i + 3] != plain[4 * i..4 * i + 3];
            // A pixel that is already the tint colour stays; every other pixel changes.
            if on {
                assert!(tinted[4 * i + 2] >= plain[4 * i + 2] || !changed, "pixel {i} of part {k} is tinted");
            } else {
                assert!(tinted[4 * i] <= plain[4 * i], "pixel {i} outside the part is dimmed");
            }
        }
    }
}
