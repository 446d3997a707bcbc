//! The advlens explorer: pick a model, see its predictions on sample images, computed in the
//! browser on WebGPU when the browser has it and on the CPU engine otherwise.
//!
//! This file is glue: start-up, model loading and engine choice. Drawing lives in [`view`],
//! network access in [`fetch`], constants in [`config`].

mod config;
mod error;
mod fetch;
mod inspect;
mod session;
mod view;

pub use session::Session;

use std::sync::Arc;

use advlens_shared::model::{Bundle, SampleSet, SAMPLES_FILE, SPEC_FILE, WEIGHTS_FILE};
use advlens_shared::tensor::softmax;
use advlens_shared::{Engine, EngineKind};
use wasm_bindgen::prelude::*;

use crate::error::AppError;

/// Entry point: runs once when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        // A panic is a bug: make it visible to the user and to the end-to-end test.
        view::set_status("panic", &format!("internal error (please report): {info}"));
    }));
    // Pages that embed advlens through `Session` have no explorer to build.
    if view::document().ok().and_then(|d| d.get_element_by_id("status")).is_none() {
        return;
    }
    wasm_bindgen_futures::spawn_local(async {
        if let Err(e) = run().await {
            view::set_status("error", &e.to_string());
        }
    });
}

async fn run() -> Result<(), AppError> {
    let doc = view::document()?;
    let params = view::query_params()?;
    let catalog: Vec<config::CatalogEntry> = serde_json::from_slice(&fetch::bytes(config::CATALOG_URL).await?)
        .map_err(|e| AppError::Data(format!("{}: {e}", config::CATALOG_URL)))?;
    let wanted = params.get("model").cloned().or_else(|| catalog.first().map(|m| m.id.clone()));
    let entry = catalog
        .iter()
        .find(|m| Some(&m.id) == wanted.as_ref())
        .ok_or_else(|| AppError::Data(format!("model `{}` is not in {}", wanted.unwrap_or_default(), config::CATALOG_URL)))?;
    view::model_picker(&doc, &catalog, &entry.id)?;

    view::set_status("loading", &format!("loading {} ...", entry.title));
    let base = format!("{}/{}", config::MODELS_URL, entry.id);
    let bundle = Bundle::from_bytes(
        &fetch::bytes(&format!("{base}/{SPEC_FILE}")).await?,
        &fetch::bytes(&format!("{base}/{WEIGHTS_FILE}")).await?,
    )
    .map_err(|e| AppError::Model(format!("{base}: {e}")))?;
    let samples = SampleSet::from_json(&fetch::bytes(&format!("{base}/{SAMPLES_FILE}")).await?)?;
    let atlas = if entry.atlas { Some(inspect::Atlas::fetch(&base).await?) } else { None };
    let bundle = Arc::new(bundle);

    let force_cpu = params.get("engine").is_some_and(|e| e == "cpu");
    let (engine, fallback_reason) = choose_engine(bundle.clone(), force_cpu).await;
    view::engine_badge(&doc, &engine, fallback_reason.as_deref())?;

    let logits = engine.forward(&samples.batch()?).await?;
    let probabilities: Vec<Vec<f32>> = (0..samples.samples.len()).map(|i| softmax(logits.row(i))).collect();
    view::sample_grid(&doc, &entry.id, bundle.classes(), &samples, &probabilities)?;
    view::model_card(&doc, &bundle)?;
    let k = match params.get("sample") {
        Some(v) => v.parse().map_err(|_| AppError::Data(format!("?sample={v} is not a sample number")))?,
        None => 0,
    };
    let description = engine.describe();
    inspect::show(&doc, std::rc::Rc::new(engine), bundle.clone(), &samples, k, atlas).await?;
    view::set_status("ready", &format!("{} sample images classified on {description}", samples.samples.len()));
    Ok(())
}

/// WebGPU when the browser offers an adapter, else the CPU engine with the reason why.
async fn choose_engine(bundle: Arc<Bundle>, force_cpu: bool) -> (Engine, Option<String>) {
    if force_cpu {
        return (Engine::cpu(bundle), Some("CPU requested with ?engine=cpu".into()));
    }
    match Engine::webgpu(bundle.clone()).await {
        Ok(engine) => {
            debug_assert_eq!(engine.kind(), EngineKind::WebGpu);
            (engine, None)
        }
        Err(e) => (Engine::cpu(bundle), Some(e.to_string())),
    }
}
