//! The visitor's own images: drawing on the drawing canvas with a mouse, pen or finger, and
//! uploaded files scaled and cropped to the model's input. Both end as CHW bytes that the app
//! puts in the URL (`?pixels=`).

use std::cell::Cell;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, PointerEvent};

use crate::config::{UPLOAD_MAX_BYTES, UPLOAD_MAX_PIXELS, UPLOAD_MAX_SIDE};
use crate::dom::document;
use crate::draw::{image_size, rgba_to_chw};
use crate::error::AppError;
use crate::panels::sources::DRAW_CANVAS;

thread_local! {
    static DRAWING: Cell<bool> = const { Cell::new(false) };
}

fn canvas() -> Option<HtmlCanvasElement> {
    document().get_element_by_id(DRAW_CANVAS)?.dyn_into().ok()
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

/// Paints the drawing area black (where MNIST digits live).
pub fn clear_drawing() {
    if let Some(c) = canvas() {
        if let Some(ctx) = context(&c) {
            ctx.set_fill_style_str("#000");
            ctx.fill_rect(0.0, 0.0, f64::from(c.width()), f64::from(c.height()));
        }
    }
}

/// Listens for strokes on the drawing area (pointer events: mouse, pen and touch alike).
pub fn listen_for_drawing() -> Result<(), AppError> {
    let handler = Closure::<dyn FnMut(PointerEvent)>::new(move |e: PointerEvent| {
        let Some(c) = canvas() else { return };
        let on_canvas = e.target().and_then(|t| t.dyn_into::<HtmlCanvasElement>().ok()).is_some_and(|t| t == c);
        match e.type_().as_str() {
            "pointerdown" if on_canvas => {
                e.prevent_default();
                let _ = c.set_pointer_capture(e.pointer_id());
                DRAWING.with(|d| d.set(true));
                stroke(&c, &e, true);
            }
            "pointermove" if on_canvas && DRAWING.with(Cell::get) => stroke(&c, &e, false),
            "pointerup" | "pointercancel" => DRAWING.with(|d| d.set(false)),
            _ => {}
        }
    });
    let doc = document();
    for kind in ["pointerdown", "pointermove", "pointerup", "pointercancel"] {
        doc.add_event_listener_with_callback(kind, handler.as_ref().unchecked_ref())?;
    }
    handler.forget(); // one listener for the page's lifetime
    Ok(())
}

fn stroke(c: &HtmlCanvasElement, e: &PointerEvent, start: bool) {
    let Some(ctx) = context(c) else { return };
    let scale = f64::from(c.width()) / f64::from(c.client_width().max(1));
    let (x, y) = (f64::from(e.offset_x()) * scale, f64::from(e.offset_y()) * scale);
    ctx.set_stroke_style_str("#fff");
    ctx.set_line_width(f64::from(c.width()) / 12.0);
    ctx.set_line_cap("round");
    ctx.set_line_join("round");
    if start {
        ctx.begin_path();
        ctx.move_to(x, y);
    }
    ctx.line_to(x, y);
    ctx.stroke();
}

/// The drawing as CHW bytes (one channel).
pub fn drawing_pixels() -> Option<Vec<u8>> {
    let c = canvas()?;
    let data = context(&c)?.get_image_data(0.0, 0.0, f64::from(c.width()), f64::from(c.height())).ok()?;
    Some(rgba_to_chw(&data.data(), 1).0)
}

/// Reads, checks, decodes, scales and crops an uploaded file to `[c, h, w]` bytes; the string
/// says what was done to it.
pub async fn upload(file: web_sys::File, [c, h, w]: [usize; 3]) -> Result<(Vec<u8>, String), AppError> {
    let name = file.name();
    let bytes = file.size();
    if bytes > UPLOAD_MAX_BYTES as f64 {
        return Err(AppError::Data(format!("{name} is {:.0} MB; the page takes files up to {} MB", bytes / 1e6, UPLOAD_MAX_BYTES / 1_000_000)));
    }
    let buffer = JsFuture::from(file.array_buffer()).await.map_err(|e| AppError::Data(format!("cannot read {name}: {}", crate::fetch::js_message(&e))))?;
    let head = js_sys::Uint8Array::new_with_byte_offset_and_length(&buffer, 0, js_sys::Uint8Array::new(&buffer).length().min(65_536)).to_vec();
    if let Some((iw, ih)) = image_size(&head) {
        if iw > UPLOAD_MAX_SIDE || ih > UPLOAD_MAX_SIDE || u64::from(iw) * u64::from(ih) > UPLOAD_MAX_PIXELS {
            return Err(AppError::Data(format!(
                "{name} is {iw}×{ih} pixels; the page takes images up to {UPLOAD_MAX_SIDE} pixels a side and {} megapixels",
                UPLOAD_MAX_PIXELS / 1_000_000
            )));
        }
    }
    let window = web_sys::window().ok_or_else(|| AppError::Browser("no window".into()))?;
    let bitmap: web_sys::ImageBitmap = JsFuture::from(window.create_image_bitmap_with_blob(&file)?)
        .await
        .map_err(|_| AppError::Data(format!("{name} is not an image this browser can decode")))?
        .unchecked_into();
    let (iw, ih) = (f64::from(bitmap.width()), f64::from(bitmap.height()));
    let side = iw.min(ih);
    let out: HtmlCanvasElement = document().create_element("canvas")?.unchecked_into();
    out.set_width(w as u32);
    out.set_height(h as u32);
    let ctx = context(&out).ok_or_else(|| AppError::Browser("no 2d context".into()))?;
    ctx.set_image_smoothing_enabled(true);
    ctx.draw_image_with_image_bitmap_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(&bitmap, (iw - side) / 2.0, (ih - side) / 2.0, side, side, 0.0, 0.0, w as f64, h as f64)?;
    bitmap.close();
    let data = ctx.get_image_data(0.0, 0.0, w as f64, h as f64)?;
    let (pixels, inverted) = rgba_to_chw(&data.data(), c);
    let mut what = format!("{name} ({}×{}) scaled to {w}×{h}", iw as u32, ih as u32);
    if iw != ih {
        what += ", middle square";
    }
    if inverted {
        what += ", inverted to light on dark";
    }
    Ok((pixels, what))
}
