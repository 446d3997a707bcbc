//! The worker's side: one model on one engine, answering the page's [`Request`]s with
//! `advlens_shared` — the same code the CLI runs (prediction, tracing, attacks).

use std::collections::HashMap;
use std::sync::Arc;

use advlens_shared::analysis::trace::trace;
use advlens_shared::attack::{attack_observed, ensemble_observed, AttackKind};
use advlens_shared::model::{Bundle, SPEC_FILE, WEIGHTS_FILE};
use advlens_shared::tensor::softmax;
use advlens_shared::engine::EngineKind;
use advlens_shared::{Engine, Tensor};

use crate::error::AppError;
use crate::fetch;
use crate::onnx_choices::OnnxChoices;
use crate::protocol::{AttackRow, Companion, CompanionVerdict, EnginePref, LayerMaps, Look, ModelInfo, ModelSource, Pixels, Reply, Request};

/// The loaded model, if any.
#[derive(Default)]
pub struct Lab {
    engine: Option<Engine>,
    /// Set when the GPU failed and the CPU engine took over: why, until the page is told.
    changed: Option<String>,
    /// A test fault: destroy the GPU device when the next attack reaches this step.
    lose_device_at: Option<usize>,
    /// The other models of ensemble attacks, by URL, on the CPU engine: these small models
    /// cost less there than a GPU device each would.
    companions: HashMap<String, Engine>,
}

impl Lab {
    /// Answers one request; errors are sentences for people. Long requests (attacks) report
    /// their steps through `progress(done, total)`. When the GPU fails (a lost device), the
    /// request runs again from the start on the CPU engine, which stays; see [`Lab::take_change`].
    pub async fn handle(&mut self, request: Request, progress: &mut dyn FnMut(usize, usize)) -> Result<Reply, String> {
        // Only a request on the GPU may need a second run: only it is kept.
        let retry = self.on_gpu().then(|| request.clone());
        match (self.try_handle(request, progress).await, retry) {
            (Err(AppError::Gpu(why)), Some(request)) => {
                let bundle = Arc::new(self.engine.as_ref().map(|e| e.bundle().clone()).ok_or("no model is loaded")?);
                self.engine = Some(Engine::cpu(bundle));
                self.changed = Some(why);
                self.try_handle(request, progress).await.map_err(|e| e.to_string())
            }
            (result, _) => result.map_err(|e| e.to_string()),
        }
    }

    fn on_gpu(&self) -> bool {
        self.engine.as_ref().is_some_and(|e| e.kind() == EngineKind::WebGpu)
    }

    /// After a request that moved to the CPU engine: the engine, its description and why.
    pub fn take_change(&mut self) -> Option<(String, String, String)> {
        let why = self.changed.take()?;
        let engine = self.engine.as_ref()?;
        Some((engine.kind().as_str().to_string(), engine.describe(), why))
    }

    async fn try_handle(&mut self, request: Request, progress: &mut dyn FnMut(usize, usize)) -> Result<Reply, AppError> {
        if let Request::Load { source, engine, onnx } = request {
            self.engine = None; // never answer for the previous model
            let (engine, info) = load(&source, engine, &onnx).await?;
            self.engine = Some(engine);
            return Ok(Reply::Loaded(info));
        }
        if let Request::Attack { companions, .. } = &request {
            self.open_companions(companions).await?;
        }
        let engine = self.engine.as_ref().ok_or_else(|| AppError::Model("no model is loaded".into()))?;
        match request {
            Request::Load { .. } => unreachable!("handled above"),
            Request::SimulateDeviceLoss { at_step } => {
                let armed = engine.kind() == EngineKind::WebGpu;
                self.lose_device_at = armed.then_some(at_step);
                Ok(Reply::DeviceLost(armed))
            }
            Request::Classify { pixels, n } => {
                let logits = engine.forward(&images(engine, pixels, n)?).await?;
                Ok(Reply::Classified((0..n).map(|i| softmax(logits.row(i))).collect()))
            }
            Request::Look { pixels, layers } => {
                let image = images(engine, pixels, 1)?;
                let probabilities = softmax(engine.forward(&image).await?.row(0));
                let names: Vec<&str> = layers.iter().map(String::as_str).collect();
                let mut maps = engine.activations(&image, &names).await?;
                let layers = layers
                    .iter()
                    .map(|name| {
                        let t = maps.remove(name).ok_or_else(|| AppError::Model(format!("no layer `{name}` in this model")))?;
                        match t.shape() {
                            &[1, c, h, w] => Ok(LayerMaps { layer: name.clone(), shape: [c, h, w], data: t.into_data() }),
                            s => Err(AppError::Model(format!("layer `{name}` outputs {s:?}, not feature maps"))),
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Reply::Looked(Look { probabilities, layers }))
            }
            Request::Trace { pixels, class, layer } => {
                Ok(Reply::Traced(trace(engine, &images(engine, pixels, 1)?, class, &layer).await?))
            }
            Request::Attack { pixels, label, attack: spec, companions } => {
                if !(spec.epsilon.is_finite() && spec.epsilon > 0.0) || spec.steps == 0 || spec.steps > crate::attack_params::MAX_STEPS {
                    return Err(AppError::Model(format!("an attack needs epsilon > 0 and 1 to {} steps (got epsilon {}, {} steps)", crate::attack_params::MAX_STEPS, spec.epsilon, spec.steps)));
                }
                let image = images(engine, pixels, 1)?;
                let label = match label {
                    Some(l) => l,
                    None => advlens_shared::tensor::argmax(engine.forward(&image).await?.row(0)),
                };
                let mut steps = Vec::with_capacity(spec.steps);
                let lose_at = self.lose_device_at.take();
                let mut observe = |done: usize, total: usize, _: f32, x: &[f32]| {
                    steps.push(x.to_vec());
                    progress(done, total);
                    if lose_at == Some(done) {
                        engine.simulate_device_loss();
                    }
                };
                let outcome = match spec.kind {
                    AttackKind::Ensemble { .. } => {
                        let attacked = companions.iter().filter(|c| c.attacked).map(|c| &self.companions[source_url(&c.source)]);
                        let models: Vec<&Engine> = std::iter::once(engine).chain(attacked).collect();
                        ensemble_observed(&models, &image, label, &spec, &mut observe).await?
                    }
                    _ if !companions.is_empty() => return Err(AppError::Model("only the ensemble attack runs on several models".into())),
                    _ => attack_observed(engine, &image, label, &spec, &mut observe).await?,
                };
                let mut verdicts = Vec::with_capacity(companions.len());
                for c in &companions {
                    let probabilities = softmax(self.companions[source_url(&c.source)].forward(&outcome.image).await?.row(0));
                    verdicts.push(CompanionVerdict { id: c.id.clone(), attacked: c.attacked, probabilities });
                }
                Ok(Reply::Attacked(AttackRow {
                    companions: verdicts,
                    pixels: outcome.image.into_data(),
                    clean_probabilities: outcome.clean_probs,
                    probabilities: outcome.probs,
                    success: outcome.success,
                    target: outcome.target,
                    losses: outcome.losses,
                    steps,
                }))
            }
        }
    }
}

impl Lab {
    /// Opens each companion not opened before, checking that it takes the loaded model's images
    /// and classes.
    async fn open_companions(&mut self, companions: &[Companion]) -> Result<(), AppError> {
        let Some(main) = self.engine.as_ref().map(|e| e.bundle().clone()) else { return Ok(()) };
        for c in companions {
            let url = source_url(&c.source);
            if !self.companions.contains_key(url) {
                let (bundle, _) = fetch_bundle(&c.source, &OnnxChoices::default()).await?;
                self.companions.insert(url.to_string(), Engine::cpu(Arc::new(bundle)));
            }
            let other = self.companions[url].bundle();
            if other.input_shape() != main.input_shape() || other.classes() != main.classes() {
                return Err(AppError::Model(format!("“{}” takes {:?} images of other classes than this model's {:?}: it cannot join this attack", c.id, other.input_shape(), main.input_shape())));
            }
        }
        Ok(())
    }
}

fn source_url(source: &ModelSource) -> &str {
    match source {
        ModelSource::Folder(u) | ModelSource::File(u) => u,
    }
}

fn images(engine: &Engine, pixels: Pixels, n: usize) -> Result<Tensor, AppError> {
    let [c, h, w] = engine.bundle().input_shape();
    Ok(Tensor::new(vec![n, c, h, w], pixels)?)
}

/// The bundle at `source`, validated, with the samples a single file carries.
async fn fetch_bundle(source: &ModelSource, onnx: &OnnxChoices) -> Result<(Bundle, Option<advlens_shared::model::SampleSet>), AppError> {
    Ok(match source {
        ModelSource::Folder(base) => {
            let (spec_url, weights_url) = (format!("{base}/{SPEC_FILE}"), format!("{base}/{WEIGHTS_FILE}"));
            let (spec, weights) = futures_util::future::join(fetch::bytes(&spec_url), fetch::bytes(&weights_url)).await;
            let (spec, weights) = (spec?, weights?);
            (Bundle::from_bytes(&spec, &weights).map_err(|e| AppError::Model(format!("{base}: {e}")))?, None)
        }
        ModelSource::File(url) => crate::own_model::open(&fetch::bytes_at_most(url, crate::own_model::MAX_BYTES).await?, onnx)?,
    })
}

async fn load(source: &ModelSource, pref: EnginePref, onnx: &OnnxChoices) -> Result<(Engine, ModelInfo), AppError> {
    let (bundle, samples) = fetch_bundle(source, onnx).await?;
    let bundle = Arc::new(bundle);
    let (engine, fallback_reason) = match pref {
        EnginePref::Cpu => (Engine::cpu(bundle.clone()), Some("the CPU engine was asked for (?engine=cpu)".to_string())),
        EnginePref::Auto => match Engine::webgpu(bundle.clone()).await {
            Ok(engine) => (engine, None),
            Err(e) => (Engine::cpu(bundle.clone()), Some(e.to_string())),
        },
    };
    let spec = bundle.spec().clone();
    let shapes = std::iter::once("input".to_string())
        .chain(spec.nodes.iter().map(|n| n.name.clone()))
        .filter_map(|name| bundle.shape_of(&name).map(|s| (name.clone(), s.to_vec())))
        .collect();
    let info = ModelInfo {
        parameters: bundle.weights().values().map(Tensor::len).sum(),
        spec,
        shapes,
        engine: engine.kind().as_str().into(),
        engine_description: engine.describe(),
        fallback_reason,
        samples,
    };
    Ok((engine, info))
}
