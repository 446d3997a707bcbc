//! Opening a model in a worker: the bundle (a folder or a single file), its sample images and
//! their predictions — everything a [`LoadedModel`] holds, and no drawing. The explored model
//! and the compared one open the same way, each in its own worker.

use advlens_shared::analysis::metrics::class_similarity;
use advlens_shared::model::{SampleSet, SAMPLES_FILE};

use crate::client::Compute;
use crate::config::CatalogEntry;
use crate::dom::document;
use crate::error::AppError;
use crate::fetch;
use crate::panels::LoadedModel;
use crate::protocol::{EnginePref, ModelSource, Reply, Request};

/// Loads `entry` on `compute`'s worker with the engine asked for.
pub async fn open(compute: &Compute, entry: &CatalogEntry, engine: EnginePref) -> Result<LoadedModel, AppError> {
    let base = entry.base();
    let load = Request::Load { source: source_of(entry)?, engine, onnx: entry.onnx.clone() };
    // A folder's samples download while the worker loads the model; a file carries its own.
    let samples_url = format!("{base}/{SAMPLES_FILE}");
    let folder = entry.file.is_none();
    let fetch_samples = async move { if folder { Some(fetch::bytes(&samples_url).await) } else { None } };
    let ask = compute.ask(load.clone(), |r| if let Reply::Loaded(i) = r { Ok(i) } else { Err(r) });
    let (info, samples) = futures_util::future::join(ask, fetch_samples).await;
    let mut info = info.map_err(AppError::Model)?;
    let samples = match (info.samples.take(), samples) {
        (_, Some(bytes)) => {
            let set = SampleSet::from_json(&bytes?)?;
            if set.samples.is_empty() {
                return Err(AppError::Data(format!("{base}/{SAMPLES_FILE} has no images")));
            }
            set
        }
        (Some(set), None) => set,
        (None, None) => SampleSet { dataset: String::new(), split: String::new(), shape: info.input_shape(), samples: Vec::new() },
    };
    if samples.shape != info.input_shape() {
        return Err(AppError::Data(format!("the sample images are {:?} but the model takes {:?}", samples.shape, info.input_shape())));
    }
    let n = samples.samples.len();
    let pixels: Vec<f32> = samples.samples.iter().flat_map(|s| s.pixels.iter().map(|&p| f32::from(p) / 255.0)).collect();
    let probabilities = if n == 0 {
        Vec::new()
    } else {
        compute.ask(Request::Classify { pixels, n }, |r| if let Reply::Classified(p) = r { Ok(p) } else { Err(r) }).await.map_err(AppError::Model)?
    };
    let layers = info.feature_layers();
    let similarity = class_similarity(&info.spec.classes, &info.spec.hierarchy);
    Ok(LoadedModel { entry: entry.clone(), load, info, samples, probabilities, layers, similarity })
}

/// Where the worker finds `entry`'s bundle: an absolute URL, since the worker's own base URL is
/// a blob: URL.
pub fn source_of(entry: &CatalogEntry) -> Result<ModelSource, AppError> {
    let page = document().base_uri()?.unwrap_or_default();
    let absolute = |url: &str| web_sys::Url::new_with_base(url, &page).map(|u| u.href()).unwrap_or_else(|_| url.to_string());
    Ok(match &entry.file {
        Some(url) => ModelSource::File(absolute(url)),
        None => ModelSource::Folder(absolute(&entry.base())),
    })
}
