//! Fetching files relative to the page.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::error::AppError;

/// The body of `url`, or an error naming the URL and the HTTP status.
pub async fn bytes(url: &str) -> Result<Vec<u8>, AppError> {
    let fail = |problem: String| AppError::Fetch { url: url.to_string(), problem };
    let window = web_sys::window().ok_or_else(|| fail("no window".into()))?;
    let response = JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| fail(format!("{e:?}")))?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| fail("not a response".into()))?;
    if !response.ok() {
        return Err(fail(format!("HTTP {} {}", response.status(), response.status_text())));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| fail(format!("{e:?}")))?)
        .await
        .map_err(|e| fail(format!("{e:?}")))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}
