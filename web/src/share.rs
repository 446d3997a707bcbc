//! "Copy link" and "copy embed code": the page's address already reproduces what is shown
//! (image, attack, step, layer, neuron), so sharing is writing it — or an iframe around it with
//! `embed=<view>` — to the clipboard. The text also appears in a box to copy by hand where the
//! browser refuses the clipboard (no permission, not a secure context).

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::dom::by_id;
use crate::state::{Embed, PageState};

/// The iframe a course page pastes to show `view` of the state at `url` (an absolute address
/// whose query is the state, without `embed=`).
pub fn embed_code(page: &str, state: &PageState, view: Embed) -> String {
    let mut one = state.clone();
    one.embed = Some(view);
    let src = format!("{page}{}", one.to_query()).replace('&', "&amp;").replace('"', "&quot;");
    format!("<iframe src=\"{src}\" title=\"advlens explorer: {}\" width=\"100%\" height=\"{}\" style=\"border:0\" loading=\"lazy\"></iframe>", view.title(), view.height())
}

/// The address of `state` on this page.
pub fn link(page: &str, state: &PageState) -> String {
    let mut full = state.clone();
    full.embed = None;
    format!("{page}{}", full.to_query())
}

/// This page's address without its query: `https://host/path/`.
fn page_address() -> String {
    web_sys::window().and_then(|w| w.location().href().ok()).map(|h| h.split(['?', '#']).next().unwrap_or_default().to_string()).unwrap_or_default()
}

/// Puts the link (`embed: None`) or the embed code for the view picked in `#embed-view` on the
/// clipboard, and in the text box.
pub async fn copy(state: &PageState, embed: bool) {
    let page = page_address();
    let (text, what) = if embed {
        let picked = by_id("embed-view").ok().and_then(|e| e.dyn_into::<web_sys::HtmlSelectElement>().ok()).map(|s| s.value()).unwrap_or_default();
        let view = Embed::ALL.into_iter().find(|v| v.as_str() == picked).unwrap_or(Embed::Why);
        (embed_code(&page, state, view), format!("the embed code of “{}”", view.title()))
    } else {
        (link(&page, state), "the link".to_string())
    };
    let shown = by_id("share-text").ok().and_then(|e| e.dyn_into::<web_sys::HtmlTextAreaElement>().ok());
    if let Some(area) = &shown {
        area.set_value(&text);
        let _ = area.remove_attribute("hidden");
        area.select();
    }
    let said = match write_clipboard(&text).await {
        Ok(()) => format!("Copied {what}."),
        Err(why) => format!("Could not copy ({why}): {what} is selected in the box below — copy it with Ctrl+C or ⌘C."),
    };
    if let Ok(p) = by_id("share-said") {
        p.set_text_content(Some(&said));
    }
}

/// `navigator.clipboard.writeText(text)`, through reflection (web-sys keeps the Clipboard API
/// behind an unstable flag).
async fn write_clipboard(text: &str) -> Result<(), String> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    let clipboard = js_sys::Reflect::get(&navigator, &"clipboard".into()).map_err(|_| "no clipboard")?;
    if clipboard.is_undefined() {
        return Err("this page is not served over HTTPS or localhost, so the browser offers no clipboard".into());
    }
    let write = js_sys::Reflect::get(&clipboard, &"writeText".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok()).ok_or("no clipboard.writeText")?;
    let promise = write.call1(&clipboard, &JsValue::from_str(text)).map_err(|_| "the browser refused")?;
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await.map(|_| ()).map_err(|_| "the browser did not allow it".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embed_code_is_an_iframe_of_the_state_with_one_view() {
        let (state, _) = PageState::parse("?model=mnist-pgd&sample=3&image=adversarial&steps=20&step=4&embed=network");
        let code = embed_code("https://example.org/course/advlens/", &state, Embed::Attack);
        assert!(code.starts_with("<iframe src=\"https://example.org/course/advlens/?model=mnist-pgd&amp;sample=3&amp;image=adversarial&amp;steps=20&amp;step=4&amp;embed=attack\""), "{code}");
        assert!(code.contains("title=\"advlens explorer: attack the image\"") && code.ends_with("></iframe>"), "{code}");
        assert_eq!(link("https://x.org/", &state), "https://x.org/?model=mnist-pgd&sample=3&image=adversarial&steps=20&step=4", "the link shows the whole page");
        // What the iframe's src says is the state itself.
        let src = code.split('"').nth(1).unwrap().replace("&amp;", "&");
        let (back, problems) = PageState::parse(src.split_once('?').unwrap().1);
        assert!(problems.is_empty());
        assert_eq!(back, PageState { embed: Some(Embed::Attack), ..state });
    }
}
