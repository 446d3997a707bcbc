//! Inference engines: the CPU reference and its WebGPU twin, behind one [`Engine`] enum.
//!
//! Pick the engine at run time: try [`Engine::webgpu`], fall back to [`Engine::cpu`].

pub mod cpu;
#[cfg(feature = "webgpu")]
pub mod gpu;
pub mod objective;

pub use objective::{Ablation, Gradient, Objective};

use std::sync::Arc;

use crate::{Bundle, Result, Tensor};

/// Which engine runs a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Cpu,
    WebGpu,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Cpu => "cpu",
            EngineKind::WebGpu => "webgpu",
        }
    }
}

/// A model ready to run on one engine.
#[derive(Debug)]
pub enum Engine {
    Cpu(cpu::CpuEngine),
    #[cfg(feature = "webgpu")]
    WebGpu(gpu::GpuEngine),
}

impl Engine {
    pub fn cpu(bundle: Arc<Bundle>) -> Self {
        Engine::Cpu(cpu::CpuEngine::new(bundle))
    }

    /// The WebGPU engine on the default adapter, or an error saying why there is none.
    #[cfg(feature = "webgpu")]
    pub async fn webgpu(bundle: Arc<Bundle>) -> Result<Self> {
        Ok(Engine::WebGpu(gpu::GpuEngine::new(bundle).await?))
    }

    pub fn kind(&self) -> EngineKind {
        match self {
            Engine::Cpu(_) => EngineKind::Cpu,
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(_) => EngineKind::WebGpu,
        }
    }

    /// A human-readable description of where the model runs.
    pub fn describe(&self) -> String {
        match self {
            Engine::Cpu(_) => "CPU (Rust reference engine)".into(),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(g) => {
                let a = g.adapter();
                format!("WebGPU ({}, {:?})", if a.name.is_empty() { "unnamed adapter" } else { &a.name }, a.backend)
            }
        }
    }

    /// The gradient of `objective` with respect to the image and the activations of `wrt`.
    pub async fn gradient(&self, input: &Tensor, objective: &Objective, wrt: &[&str]) -> Result<Gradient> {
        match self {
            Engine::Cpu(e) => e.gradient(input, objective, wrt),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(e) => e.gradient(input, objective, wrt).await,
        }
    }

    /// Logits with the channels of `ablation` zeroed after their nodes.
    pub async fn forward_ablated(&self, input: &Tensor, ablation: &Ablation) -> Result<Tensor> {
        match self {
            Engine::Cpu(e) => e.forward_ablated(input, ablation),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(e) => e.forward_ablated(input, ablation).await,
        }
    }

    /// The outputs of nodes `names` (e.g. a layer's feature maps) for images `[N, C, H, W]`.
    pub async fn activations(&self, input: &Tensor, names: &[&str]) -> Result<std::collections::HashMap<String, Tensor>> {
        match self {
            Engine::Cpu(e) => {
                let mut all = e.forward_all(input)?;
                names
                    .iter()
                    .map(|n| all.remove(*n).map(|t| (n.to_string(), t)).ok_or_else(|| crate::Error::Graph(format!("no node `{n}` in this model"))))
                    .collect()
            }
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(e) => e.forward_all(input, names, &Ablation::default()).await,
        }
    }

    /// The bundle this engine runs.
    /// Simulates a lost GPU device (see [`gpu::GpuEngine::destroy_device`]); `false` on the
    /// CPU engine, which has no device to lose.
    pub fn simulate_device_loss(&self) -> bool {
        match self {
            Engine::Cpu(_) => false,
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(g) => {
                g.destroy_device();
                true
            }
        }
    }

    pub fn bundle(&self) -> &Bundle {
        match self {
            Engine::Cpu(e) => e.bundle(),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(e) => e.bundle(),
        }
    }

    /// Class logits `[N, classes]` for images `[N, C, H, W]` in [0, 1].
    pub async fn forward(&self, input: &Tensor) -> Result<Tensor> {
        match self {
            Engine::Cpu(e) => e.forward(input),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(e) => e.forward(input).await,
        }
    }
}
