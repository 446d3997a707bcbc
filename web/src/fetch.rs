//! Fetching files relative to the page, from the page or from the worker.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::error::AppError;

/// The body of `url`, or an error naming the URL and the HTTP status. Works on the main thread
/// and in a worker (`fetch` of whichever global scope runs it).
pub async fn bytes(url: &str) -> Result<Vec<u8>, AppError> {
    let fail = |problem: String| AppError::Fetch { url: url.to_string(), problem };
    let global = js_sys::global();
    let promise = if let Some(window) = global.dyn_ref::<web_sys::Window>() {
        window.fetch_with_str(url)
    } else if let Some(worker) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        worker.fetch_with_str(url)
    } else {
        return Err(fail("this scope cannot fetch".into()));
    };
    let response = JsFuture::from(promise).await.map_err(|e| fail(js_message(&e)))?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| fail("not a response".into()))?;
    if !response.ok() {
        return Err(fail(format!("HTTP {} {}", response.status(), response.status_text())));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| fail(js_message(&e)))?)
        .await
        .map_err(|e| fail(js_message(&e)))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The message of a JavaScript error value, for people.
pub fn js_message(v: &wasm_bindgen::JsValue) -> String {
    if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    v.as_string().unwrap_or_else(|| format!("{v:?}"))
}
