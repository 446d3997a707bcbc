//! ONNX import: a vision model exported by PyTorch (either exporter), Keras or timm, turned into
//! a validated [`Bundle`] that every engine and analysis runs.
//!
//! The importer maps ONNX nodes onto the bundle's layer set (docs/bundle-format.md) and folds
//! what is not a layer: initialisers and `Constant` nodes become weights, `Identity` and
//! `Dropout` disappear, a leading `Sub` / `Div` / `Mul` by per-channel constants becomes the
//! input's mean and std, `MatMul` + `Add` becomes a linear layer, `Flatten` and `Reshape` to
//! `[N, features]` become a flatten, `ReduceMean` over H and W a global average pool, a zero
//! `Pad` the padding of the convolution or average pool that reads it. Keras's and TensorFlow's
//! channels-last values are read as views of channels-first layers (`graph/layout.rs`). What
//! cannot be mapped is an error naming the node, its op and what is supported — never a
//! silent skip. See [`SUPPORTED_OPS`]. [`export`] writes a bundle as ONNX (opset 17); importing
//! that file gives the same tensors.
//!
//! ```no_run
//! let bytes = std::fs::read("resnet18.onnx")?;
//! let options = advlens_shared::onnx::ImportOptions { name: "resnet18".into(), ..Default::default() };
//! let bundle = advlens_shared::onnx::import(&bytes, &options)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod export;
mod fold;
mod graph;
pub mod proto;

pub use export::{export, CLASSES_KEY, EXPORT_OPSET};

/// The names of ImageNet's 1000 classes in the order of its models' outputs (torchvision,
/// timm and Keras's applications), one per line: torchvision's `_IMAGENET_CATEGORIES`
/// (BSD-3-Clause), where the two classes ImageNet calls "crane" and "maillot" are told apart.
pub const IMAGENET_CLASSES: &str = include_str!("imagenet_classes.txt");

/// [`IMAGENET_CLASSES`] as a list: what `advlens import --classes imagenet` and the explorer's
/// "ImageNet's classes" give the importer.
pub fn imagenet_classes() -> Vec<String> {
    IMAGENET_CLASSES.lines().map(String::from).collect()
}

use prost::Message;

use crate::model::{limits, Bundle};
use crate::{Error, Result};

/// The ONNX ops the importer reads (the standard domain, opsets 11 to 21).
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv", "ConvTranspose", "Relu", "Clip", "LeakyRelu", "Sigmoid", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "BatchNormalization",
    "Flatten", "Reshape", "Gemm", "MatMul", "Add", "Sub", "Div", "Mul", "Concat", "Slice", "Split", "Pad", "Resize", "Upsample", "HardSigmoid", "HardSwish", "Unsqueeze", "Shape",
    "Transpose", "LayerNormalization", "InstanceNormalization", "Gelu", "Erf", "Squeeze", "Cast", "Softmax", "LogSoftmax",
    "Dropout", "Identity", "Constant",
];

/// The opset range this importer was written against.
pub const OPSETS: std::ops::RangeInclusive<i64> = 11..=21;

/// Largest .onnx file read: the bundle's weight cap (1 GiB of f32) plus room for the graph.
pub const MAX_FILE_BYTES: usize = limits::MAX_WEIGHTS * 4 + (64 << 20);

/// What the ONNX file does not say and the user may.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The bundle's model name.
    pub name: String,
    /// Class names, one per output logit; default `class 0`, `class 1`, ...
    pub classes: Option<Vec<String>>,
    /// Per-channel mean and std that turn [0, 1] pixels into what the ONNX graph's input expects
    /// (e.g. ImageNet's for torchvision models); default 0 and 1. A normalisation inside the
    /// graph (a leading `Sub` / `Div`) is folded in as well. Without either, a graph that
    /// divides its input by 50 or more itself (Keras's `Rescaling(1/255)`) is taken to read
    /// 0-255 pixels: [0, 1] pixels are scaled by 255 (the provenance says so).
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    /// The dataset the model was trained on, for provenance (and the trainer's commands).
    pub dataset: Option<String>,
}

/// Reads an ONNX model and builds a validated bundle from it.
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<Bundle> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge(format!("the ONNX file has {} bytes (at most {MAX_FILE_BYTES})", bytes.len())));
    }
    let model = proto::ModelProto::decode(bytes).map_err(|e| Error::Onnx(format!("not an ONNX model file (protobuf: {e})")))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| Error::Onnx("the model imports no standard (ai.onnx) opset: is this an ONNX model?".into()))?;
    if !OPSETS.contains(&opset) {
        return Err(Error::Onnx(format!("opset {opset} is outside the supported {}..={}: re-export with opset_version between them", OPSETS.start(), OPSETS.end())));
    }
    let graph = model.graph.as_ref().ok_or_else(|| Error::Onnx("the model has no graph".into()))?;
    let (spec, weights) = graph::translate(graph, &model, opset, options)?;
    Bundle::new(spec, weights)
}
