//! The one error type of `advlens-shared`.

use thiserror::Error;

/// Everything that can go wrong when loading a bundle or running a model.
///
/// Messages name the offending thing, say what was expected and what was found,
/// and where it helps, what to do about it.
#[derive(Debug, Error)]
pub enum Error {
    #[error("bundle description is not valid JSON for format v{version}: {source}")]
    SpecJson {
        version: u32,
        #[source]
        source: serde_json::Error,
    },
    #[error("bundle format `{found}` is not `{expected}`: this is not an advlens model bundle")]
    WrongFormat { expected: &'static str, found: String },
    #[error("bundle format v{found} is not readable by this build (it reads v{supported}): re-export the model with `advlens export`")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("weights are not a valid safetensors file: {0}")]
    Weights(String),
    #[error("the file is cut off: it ends before the weights its header lists; download or copy it again")]
    Truncated,
    #[error("invalid model graph: {0}")]
    Graph(String),
    #[error("tensor `{name}`: {problem}")]
    Tensor { name: String, problem: String },
    #[error("input shape mismatch: the model takes {expected}, got {found}")]
    InputShape { expected: String, found: String },
    #[error("the model is too large: {0}")]
    TooLarge(String),
    #[error("no WebGPU adapter is available ({0}); use the CPU engine")]
    NoGpuAdapter(String),
    #[error("the GPU device failed: {0}; use the CPU engine")]
    Gpu(String),
    #[error("atlas.json: {0}; rerun `advlens analyze --atlas` to write it again")]
    Atlas(String),
    #[error("samples.json: {0}; export the model again to rewrite it")]
    Samples(String),
    #[error("ONNX import: {0}")]
    Onnx(String),
    #[error("concept world: {0}")]
    Concepts(String),
    #[error("cannot read or write `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
