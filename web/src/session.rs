//! The engine as a JavaScript API, for pages that embed advlens and for the peer benchmark:
//!
//! ```js
//! import init, { Session } from './advlens_web.js';
//! await init();
//! const s = await Session.create(modelJsonBytes, weightsBytes, 'auto');   // 'webgpu' | 'cpu' | 'auto'
//! const logits = await s.forward(pixels /* Float32Array NCHW in [0,1] */, n);
//! const { values, grad } = await s.crossEntropyGradient(pixels, n, target);
//! ```

use std::sync::Arc;

use advlens_shared::engine::Objective;
use advlens_shared::{Bundle, Engine, Tensor};
use wasm_bindgen::prelude::*;

/// A loaded model on one engine.
#[wasm_bindgen]
pub struct Session {
    engine: Engine,
    bundle: Arc<Bundle>,
}

#[wasm_bindgen]
impl Session {
    /// Loads a bundle from the bytes of `model.json` and `weights.safetensors` and opens it on
    /// `device`: `webgpu` (fails without an adapter), `cpu`, or `auto` (WebGPU, else CPU).
    pub async fn create(model_json: &[u8], weights: &[u8], device: &str) -> Result<Session, JsError> {
        let bundle = Arc::new(Bundle::from_bytes(model_json, weights)?);
        let engine = match device {
            "cpu" => Engine::cpu(bundle.clone()),
            "webgpu" => Engine::webgpu(bundle.clone()).await?,
            "auto" => match Engine::webgpu(bundle.clone()).await {
                Ok(e) => e,
                Err(_) => Engine::cpu(bundle.clone()),
            },
            other => return Err(JsError::new(&format!("unknown device `{other}`: use webgpu, cpu or auto"))),
        };
        Ok(Session { engine, bundle })
    }

    /// `webgpu` or `cpu`.
    pub fn engine(&self) -> String {
        self.engine.kind().as_str().into()
    }

    /// Logits `[n * classes]` for `n` images (NCHW, values in [0, 1]).
    pub async fn forward(&self, pixels: Vec<f32>, n: usize) -> Result<Vec<f32>, JsError> {
        Ok(self.engine.forward(&self.images(pixels, n)?).await?.into_data())
    }

    /// Cross-entropy toward `target` for each of `n` images, and its gradient with respect to
    /// the pixels: `{ values: Float32Array(n), grad: Float32Array(n*C*H*W) }`.
    #[wasm_bindgen(js_name = crossEntropyGradient)]
    pub async fn cross_entropy_gradient(&self, pixels: Vec<f32>, n: usize, target: usize) -> Result<JsValue, JsError> {
        let g = self.engine.gradient(&self.images(pixels, n)?, &Objective::CrossEntropy { target }, &[]).await?;
        let out = js_sys::Object::new();
        js_sys::Reflect::set(&out, &"values".into(), &js_sys::Float32Array::from(g.values.as_slice()))
            .map_err(|_| JsError::new("building the result"))?;
        js_sys::Reflect::set(&out, &"grad".into(), &js_sys::Float32Array::from(g.input.data()))
            .map_err(|_| JsError::new("building the result"))?;
        Ok(out.into())
    }

    fn images(&self, pixels: Vec<f32>, n: usize) -> Result<Tensor, JsError> {
        let [c, h, w] = self.bundle.input_shape();
        Ok(Tensor::new(vec![n, c, h, w], pixels)?)
    }
}
