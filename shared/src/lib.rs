//! # advlens-shared
//!
//! The part of advlens that runs everywhere — natively and in wasm32: the model bundle format
//! and the inference engines (a CPU reference and its WebGPU twin).
//!
//! ```no_run
//! use std::sync::Arc;
//! use advlens_shared::{Bundle, Tensor, engine::cpu::CpuEngine, tensor::{argmax, softmax}};
//!
//! let bundle = Arc::new(Bundle::load("web/assets/models/mnist-small")?);
//! let engine = CpuEngine::new(bundle.clone());
//! let image = Tensor::zeros(vec![1, 1, 28, 28]);
//! let logits = engine.forward(&image)?;
//! let probs = softmax(logits.row(0));
//! println!("{} ({:.1}%)", bundle.classes()[argmax(&probs)], 100.0 * probs[argmax(&probs)]);
//!
//! // Which pixels push the prediction towards "3", and how the first conv layer responds:
//! use advlens_shared::engine::{Ablation, Objective};
//! let grad = engine.gradient(&image, &Objective::Logit { class: 3 }, &["conv1"])?;
//! assert_eq!(grad.input.shape(), &[1, 1, 28, 28]);
//! // The exact effect of silencing neuron 5 of conv2 on the prediction:
//! let ablated = engine.forward_ablated(&image, &Ablation::default().zero("conv2", 5))?;
//! # Ok::<(), advlens_shared::Error>(())
//! ```
//!
//! The WebGPU engine ([`engine::gpu::GpuEngine`], feature `webgpu`) offers the same calls as
//! `async` functions; [`Engine`] picks one at run time.
//!
//! Modules follow the pipeline: [`model`] (format, loading = validating) -> [`engine`]
//! (CPU reference and WGSL kernels; forward, gradients, ablation); [`concepts`] generates the
//! concept world, images with per-pixel concept labels; [`onnx`] imports models other tools
//! exported.

pub mod analysis;
pub mod attack;
pub mod concepts;
pub mod engine;
mod error;
pub mod model;
pub mod onnx;
pub mod rng;
pub mod tensor;
pub mod testing;

pub use engine::{Engine, EngineKind};
pub use error::{Error, Result};
pub use model::Bundle;
pub use tensor::Tensor;
