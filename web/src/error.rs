//! The explorer's errors, shown to the user in the page.

use wasm_bindgen::JsValue;

#[derive(Debug)]
pub enum AppError {
    /// A browser API failed.
    Browser(String),
    /// A file could not be fetched.
    Fetch { url: String, problem: String },
    /// A fetched file is not what it should be.
    Data(String),
    /// The model could not be loaded or run.
    Model(String),
    /// The GPU failed (a lost device, out of memory): the CPU engine can take over.
    Gpu(String),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Browser(m) => write!(f, "browser error: {m}"),
            AppError::Fetch { url, problem } => write!(f, "cannot load {url}: {problem}"),
            AppError::Data(m) => write!(f, "bad data: {m}"),
            AppError::Model(m) | AppError::Gpu(m) => write!(f, "{m}"),
        }
    }
}

impl From<JsValue> for AppError {
    fn from(v: JsValue) -> Self {
        AppError::Browser(crate::fetch::js_message(&v))
    }
}

impl From<advlens_shared::Error> for AppError {
    fn from(e: advlens_shared::Error) -> Self {
        match e {
            advlens_shared::Error::Gpu(_) => AppError::Gpu(e.to_string()),
            e => AppError::Model(e.to_string()),
        }
    }
}
