//! Fetching files relative to the page, from the page or from the worker.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::error::AppError;

/// The body of `url`, or an error naming the URL and the HTTP status. Works on the main thread
/// and in a worker (`fetch` of whichever global scope runs it).
pub async fn bytes(url: &str) -> Result<Vec<u8>, AppError> {
    bytes_at_most(url, u64::MAX).await
}

/// [`bytes`], refusing a body larger than `max` bytes before reading it when the server says
/// its size, else after. A download refused by the browser (a host that does not allow other
/// sites to read it: CORS) says so.
pub async fn bytes_at_most(url: &str, max: u64) -> Result<Vec<u8>, AppError> {
    let fail = |problem: String| AppError::Fetch { url: url.to_string(), problem };
    let global = js_sys::global();
    let promise = if let Some(window) = global.dyn_ref::<web_sys::Window>() {
        window.fetch_with_str(url)
    } else if let Some(worker) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        worker.fetch_with_str(url)
    } else {
        return Err(fail("this scope cannot fetch".into()));
    };
    let response = JsFuture::from(promise).await.map_err(|e| {
        let cross_origin = web_sys::Url::new(url).ok().zip(js_sys::Reflect::get(&global, &"origin".into()).ok().and_then(|o| o.as_string())).is_some_and(|(u, page)| u.origin() != page);
        if cross_origin {
            fail(format!("{} — the host must allow other sites to read it (CORS: an Access-Control-Allow-Origin header), and be reachable", js_message(&e)))
        } else {
            fail(js_message(&e))
        }
    })?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| fail("not a response".into()))?;
    if !response.ok() {
        return Err(fail(format!("HTTP {} {}", response.status(), response.status_text())));
    }
    let declared = response.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared.filter(|&s| s > max) {
        return Err(fail(format!("it is {size} bytes, more than the {max} this page accepts")));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| fail(js_message(&e)))?)
        .await
        .map_err(|e| fail(js_message(&e)))?;
    let body = js_sys::Uint8Array::new(&buffer);
    if u64::from(body.length()) > max {
        return Err(fail(format!("it is {} bytes, more than the {max} this page accepts", body.length())));
    }
    Ok(body.to_vec())
}

/// The message of a JavaScript error value, for people.
pub fn js_message(v: &wasm_bindgen::JsValue) -> String {
    if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    v.as_string().unwrap_or_else(|| format!("{v:?}"))
}
