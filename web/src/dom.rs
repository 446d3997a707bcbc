//! DOM helpers: a small element builder, canvases from RGBA bytes, and links that navigate
//! within the page. Listeners live in `app.rs` (one delegated listener per event type, as Rust
//! closures); elements only carry `data-*` attributes that say what they do.

use wasm_bindgen::{Clamped, JsCast, UnwrapThrowExt};
use web_sys::{CanvasRenderingContext2d, Document, Element, HtmlCanvasElement, HtmlImageElement, ImageData, Node};

use crate::error::AppError;

pub fn document() -> Document {
    web_sys::window().and_then(|w| w.document()).expect_throw("the explorer runs in a page with a document")
}

pub fn by_id(id: &str) -> Result<Element, AppError> {
    document().get_element_by_id(id).ok_or_else(|| AppError::Browser(format!("the page has no #{id} element")))
}

/// An element under construction: `El::new("p").class("note").text("...").into()`.
pub struct El(pub Element);

impl El {
    pub fn new(tag: &str) -> El {
        El(document().create_element(tag).expect_throw("a valid tag name"))
    }
    pub fn class(self, class: &str) -> El {
        self.0.set_class_name(class);
        self
    }
    pub fn text(self, text: &str) -> El {
        self.0.set_text_content(Some(text));
        self
    }
    pub fn attr(self, name: &str, value: &str) -> El {
        let _ = self.0.set_attribute(name, value);
        self
    }
    pub fn id(self, id: &str) -> El {
        self.0.set_id(id);
        self
    }
    pub fn child(self, node: impl AsRef<Node>) -> El {
        let _ = self.0.append_child(node.as_ref());
        self
    }
    pub fn children<N: AsRef<Node>>(self, nodes: impl IntoIterator<Item = N>) -> El {
        for n in nodes {
            let _ = self.0.append_child(n.as_ref());
        }
        self
    }
    /// A child element made of `tag` and `text`.
    pub fn add(self, tag: &str, class: &str, text: &str) -> El {
        let child = El::new(tag).class(class).text(text);
        self.child(child)
    }
}

impl AsRef<Node> for El {
    fn as_ref(&self) -> &Node {
        &self.0
    }
}

impl From<El> for Element {
    fn from(e: El) -> Element {
        e.0
    }
}

/// A link to another state of the page (`href` is a query string): the app turns a click into
/// a navigation without reload; it still opens in a new tab and can be copied.
pub fn nav_link(href: &str) -> El {
    El::new("a").attr("href", href).attr("data-nav", "")
}

/// Replaces the children of `parent` with `nodes`.
pub fn replace_children<N: AsRef<Node>>(parent: &Element, nodes: impl IntoIterator<Item = N>) {
    parent.set_inner_html("");
    for n in nodes {
        let _ = parent.append_child(n.as_ref());
    }
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

/// Resolves in a later task of the event loop (a zero-delay timeout), so that long work split
/// by it never holds the main thread in one piece.
pub async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback(&resolve);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Whether the page is phone-width (layouts with many small targets use fewer columns there).
pub fn narrow_screen() -> bool {
    web_sys::window().and_then(|w| w.inner_width().ok()).and_then(|v| v.as_f64()).is_some_and(|w| w < 600.0)
}

/// A canvas showing `rgba` (`w x h` pixels) at `scale` CSS pixels per pixel, labelled for screen
/// readers with `label` (an empty label marks it decorative).
pub fn canvas(rgba: &[u8], w: usize, h: usize, scale: f64, label: &str) -> HtmlCanvasElement {
    let canvas: HtmlCanvasElement = document().create_element("canvas").expect_throw("canvas").unchecked_into();
    canvas.set_width(w as u32);
    canvas.set_height(h as u32);
    let _ = canvas.set_attribute("style", &format!("width:{}px;height:{}px", (w as f64 * scale).round(), (h as f64 * scale).round()));
    if label.is_empty() {
        // Decorative: the link or figure around it carries the words.
        let _ = canvas.set_attribute("aria-hidden", "true");
    } else {
        let _ = canvas.set_attribute("role", "img");
        let _ = canvas.set_attribute("aria-label", label);
    }
    if let Some(ctx) = context(&canvas) {
        if let Ok(image) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), w as u32, h as u32) {
            let _ = ctx.put_image_data(&image, 0.0, 0.0);
        }
    }
    canvas
}

/// A canvas showing the `side x side` region at (`x`, `y`) of a decoded sprite sheet, `scale`
/// canvas pixels per sheet pixel, without smoothing (patches stay crisp when enlarged).
pub fn sprite(sheet: &HtmlImageElement, x: usize, y: usize, side: usize, scale: usize, label: &str) -> HtmlCanvasElement {
    let canvas: HtmlCanvasElement = document().create_element("canvas").expect_throw("canvas").unchecked_into();
    let out = (side * scale) as u32;
    canvas.set_width(out);
    canvas.set_height(out);
    let _ = canvas.set_attribute("role", "img");
    let _ = canvas.set_attribute("aria-label", label);
    if let Some(ctx) = context(&canvas) {
        ctx.set_image_smoothing_enabled(false);
        let (s, o) = (side as f64, f64::from(out));
        let _ = ctx.draw_image_with_html_image_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(sheet, x as f64, y as f64, s, s, 0.0, 0.0, o, o);
    }
    canvas
}

/// A horizontal bar `fraction` (0..1) full, with a text label before it; `data-value` holds
/// the exact number.
pub fn bar(label: &str, fraction: f32, value_text: &str, class: &str) -> El {
    let pct = (100.0 * fraction.clamp(0.0, 1.0)).max(0.5);
    El::new("div")
        .class(&format!("bar {class}"))
        .attr("data-value", &fraction.to_string())
        .add("span", "name", label)
        .child(El::new("span").class("track").child(El::new("span").class("fill").attr("style", &format!("width:{pct:.1}%"))))
        .add("span", "value", value_text)
}
