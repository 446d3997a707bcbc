//! A layer's neuron atlas on the page: `atlas.json` and its two sprite sheets, fetched and
//! decoded when the layer is first shown. A missing or broken atlas is a message, not an error:
//! the page works without patches.

use advlens_shared::analysis::atlas::AtlasMeta;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::HtmlImageElement;

use crate::config::ATLAS_DIR;
use crate::error::AppError;
use crate::fetch;

/// A loaded atlas: its description and its decoded sheets.
pub struct Atlas {
    pub meta: AtlasMeta,
    pub real: HtmlImageElement,
    pub adversarial: HtmlImageElement,
}

/// What the page knows about a layer's atlas.
pub enum AtlasState {
    /// The model has no atlas for this layer.
    None,
    Loaded(std::rc::Rc<Atlas>),
    /// It should have one but it could not be used; the message says why.
    Broken(String),
}

impl Atlas {
    /// The atlas of `layer` under `base/atlas/<layer>/`, checked against what the page expects.
    pub async fn fetch(base: &str, layer: &str, classes: usize) -> Result<Atlas, AppError> {
        let dir = format!("{base}/{ATLAS_DIR}/{layer}");
        let json = fetch::bytes(&format!("{dir}/atlas.json")).await?;
        let meta = AtlasMeta::from_json(&json, Some(classes)).map_err(|e| AppError::Data(format!("{dir}/{e}")))?;
        if meta.layer != layer {
            return Err(AppError::Data(format!("{dir}/atlas.json describes layer `{}`, not `{layer}`", meta.layer)));
        }
        let (w, h) = meta.sheet_size();
        let real = decode(&format!("{dir}/{}", meta.sheets.file("real")), w, h).await?;
        let adversarial = decode(&format!("{dir}/{}", meta.sheets.file("adversarial")), w, h).await?;
        Ok(Atlas { meta, real, adversarial })
    }
}

/// Loads and decodes an image, checking that it is `w x h`.
async fn decode(url: &str, w: usize, h: usize) -> Result<HtmlImageElement, AppError> {
    let img: HtmlImageElement = crate::dom::document().create_element("img")?.unchecked_into();
    img.set_src(url);
    JsFuture::from(img.decode())
        .await
        .map_err(|_| AppError::Fetch { url: url.into(), problem: "missing or not an image".into() })?;
    if (img.natural_width() as usize, img.natural_height() as usize) != (w, h) {
        return Err(AppError::Data(format!("{url} is {}x{} but atlas.json describes a {w}x{h} sheet", img.natural_width(), img.natural_height())));
    }
    Ok(img)
}
