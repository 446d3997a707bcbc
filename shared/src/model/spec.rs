//! The JSON half of a bundle: input, layer graph, classes and provenance.
//!
//! The format is specified in `docs/bundle-format.md`; this file is its reader's view.

use serde::{Deserialize, Serialize};

/// The `format` field every bundle description carries.
pub const FORMAT_NAME: &str = "advlens-bundle";
/// The bundle format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The name by which nodes refer to the model input.
pub const INPUT_NAME: &str = "input";

/// The description of a model (`model.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// A short, file-name friendly model name.
    pub name: String,
    pub input: InputSpec,
    /// Class names, indexed by the model's output logits.
    pub classes: Vec<String>,
    /// The layer graph in topological order: every node reads only the input and earlier nodes.
    pub nodes: Vec<Node>,
    /// The node whose output are the class logits.
    pub output: String,
    /// Optional class hierarchy (WordNet style) for the consistency metric: the parent of each
    /// class and of each inner concept, e.g. `{"cat": "mammal", "mammal": "animal"}`.
    /// Absent: classes are only similar to themselves.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub hierarchy: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub provenance: Provenance,
}

/// What the model takes: images of `channels x height x width` with values in [0, 1].
///
/// Normalisation is part of the model: the engines compute `(x - mean[c]) / std[c]` first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Per-channel mean subtracted inside the model.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided inside the model.
    pub std: Vec<f32>,
}

/// One layer of the graph.
///
/// Reading is strict: a field the op does not have (`"groups": 16`, `"dilation": 2`) is an error
/// naming the node and the field, because running the model without it would give wrong
/// results silently. (`#[serde(flatten)]` cannot deny unknown fields itself, hence the manual
/// `Deserialize` below.)
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    /// Unique name; the weights of the node are `<name>.weight` and `<name>.bias`.
    pub name: String,
    /// Names of the nodes (or [`INPUT_NAME`]) this node reads.
    pub inputs: Vec<String>,
    #[serde(flatten)]
    pub op: Op,
}

/// The operation of a node. Unknown operations and unknown fields are load errors, never skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// 2-D convolution, `[N,Cin,H,W] -> [N,Cout,H',W']` with `H' = (H + 2p - k) / s + 1`;
    /// weight `[Cout,Cin,k,k]`, bias `[Cout]`.
    ///
    /// With `groups` > 1 the channels split into that many groups, each output channel reading
    /// only its group's inputs: weight `[Cout, Cin / groups, k, k]`; `groups` = `Cin` = `Cout` is
    /// a depthwise convolution (MobileNet). Written only when it is not 1.
    ///
    /// With `dilation` d > 1 the taps are d pixels apart (`x[.., i*s + u*d - p, j*s + v*d - p]`),
    /// so the window spans `d (k - 1) + 1` pixels (DeepLab's atrous convolution). Written only
    /// when it is not 1.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        groups: usize,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        dilation: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max over `k x k` windows with stride `s`; padding counts as minus infinity.
    MaxPool2d { kernel: usize, stride: usize, padding: usize },
    /// `[N,C,H,W] -> [N, C*H*W]`.
    Flatten,
    /// `y = x W^T + b`; weight `[out,in]`, bias `[out]`.
    Linear { in_features: usize, out_features: usize },
    /// Identity at inference.
    Dropout,
    /// Inference batch norm, `y = (x - running_mean[c]) / sqrt(running_var[c] + eps) * weight[c] + bias[c]`;
    /// tensors `weight`, `bias`, `running_mean`, `running_var`, each `[channels]`.
    BatchNorm2d { channels: usize, eps: f32 },
    /// Mean over `k x k` windows with stride `s`; zero padding counts in the divisor (PyTorch's default).
    AvgPool2d { kernel: usize, stride: usize, padding: usize },
    /// `[N,C,H,W] -> [N,C]`, the mean of each channel.
    GlobalAvgPool,
    /// Elementwise sum of two inputs of the same shape (residual connections).
    Add,
    /// `min(max(x, min), max)`: ReLU6 is `min` 0, `max` 6 (MobileNet). The gradient passes where
    /// `min < x < max`, as in PyTorch's hardtanh.
    Clip { min: f32, max: f32 },
    /// `1 / (1 + exp(-x))`; gradient `y (1 - y)`.
    Sigmoid,
    /// `x` where `x > 0`, else `alpha x`; the gradient is 1 or `alpha` likewise (at 0: `alpha`,
    /// as in PyTorch).
    LeakyRelu { alpha: f32 },
    /// The inputs (two or more, equal height and width) stacked along the channel axis, in
    /// order: `[C1,H,W] ++ [C2,H,W] -> [C1+C2,H,W]` (Inception, DenseNet, SqueezeNet branches).
    Concat,
    /// `min(max(alpha x + beta, 0), 1)`; gradient `alpha` where `0 < alpha x + beta < 1`
    /// (MobileNetV3's gate: alpha 1/6, beta 1/2).
    HardSigmoid { alpha: f32, beta: f32 },
    /// `x min(max(x + 3, 0), 6) / 6`; gradient 0 below -3, `x / 3 + 1/2` up to 3, 1 above
    /// (PyTorch's hardswish).
    HardSwish,
    /// The product of two inputs: of equal shapes (SiLU is `x * sigmoid(x)`), or a map `[C,H,W]`
    /// times a per-channel vector `[C]` (a squeeze-and-excitation gate), in that order.
    Mul,
    /// Zero padding of the two spatial axes, each side its own amount:
    /// `[C,H,W] -> [C, top + H + bottom, left + W + right]`; the gradient is the output
    /// gradient's crop. What a convolution with unequal padding on two sides reads (Keras's
    /// `same` padding of a stride-2 convolution, ONNX's `SAME_UPPER`).
    Pad2d { top: usize, left: usize, bottom: usize, right: usize },
    /// Nearest-neighbour upsampling by an integer `scale`: `[C,H,W] -> [C, sH, sW]`,
    /// `y[c, i, j] = x[c, i / s, j / s]`; the gradient sums each `s x s` block (ONNX `Resize`
    /// with mode nearest, PyTorch's `Upsample(scale_factor=s)`).
    Upsample2d { scale: usize },
    /// Bilinear upsampling by an integer `scale`: `[C,H,W] -> [C, sH, sW]`, each output pixel
    /// a mix of the two nearest input rows and columns, weighted by where its centre falls:
    /// `src = max((dst + 1/2) / s - 1/2, 0)` (half-pixel centres, PyTorch's default) or, with
    /// `align_corners`, `src = dst (H - 1) / (sH - 1)`; the gradient sends each output's
    /// gradient back to its four taps (ONNX `Resize` in linear mode, PyTorch's
    /// `Upsample(mode="bilinear")`).
    ResizeBilinear { scale: usize, align_corners: bool },
    /// Channels `start..end` of the input (its first per-image axis): `[C,H,W] -> [end-start,H,W]`,
    /// `[F] -> [end-start]`; the gradient goes back to those channels, zeros elsewhere. ONNX
    /// `Slice` and `Split` along the channels (GhostNet, ReXNet, MixNet, CSP networks).
    SliceChannels { start: usize, end: usize },
    /// The exact GELU, `x Φ(x) = x (1 + erf(x / √2)) / 2`; gradient `Φ(x) + x φ(x)` (PyTorch's
    /// `gelu` with `approximate='none'`, ConvNeXt's and the transformers' activation).
    Gelu,
    /// Layer normalisation over the channels of each pixel (ConvNeXt's `LayerNorm2d`, ONNX
    /// `LayerNormalization` between two transposes): `y[c,p] = (x[c,p] - m[p]) / sqrt(v[p] + eps)
    /// * weight[c] + bias[c]` with `m`, `v` the mean and the (biased) variance over `c` of pixel
    /// `p`. Input `[C,H,W]`, or `[C]` (one pixel: a normalised feature vector); tensors
    /// `weight`, `bias`, each `[channels]`.
    ChannelNorm { channels: usize, eps: f32 },
    /// Instance normalisation (ONNX `InstanceNormalization`, PyTorch's
    /// `InstanceNorm2d(affine=True)`, style-transfer and GAN networks): every channel plane of
    /// every image normalised over its pixels, `y[c,p] = (x[c,p] - m[c]) / sqrt(v[c] + eps) *
    /// weight[c] + bias[c]` with `m`, `v` the mean and the (biased) variance over the pixels `p`
    /// of channel `c`; no running statistics. Input `[C,H,W]`; tensors `weight`, `bias`, each
    /// `[channels]`.
    InstanceNorm { channels: usize, eps: f32 },
    /// Transposed 2-D convolution (the gradient of a convolution with respect to its input, as
    /// a layer: decoders and learned upsampling), `[Cin,H,W] -> [Cout,H',W']` with
    /// `H' = (H - 1) s - 2p + d (k - 1) + output_padding + 1`:
    /// `y[o, i*s + u*d - p, j*s + v*d - p] += w[c, o, u, v] x[c, i, j]`, plus `b[o]`.
    /// Weight `[Cin, Cout / groups, k, k]` (PyTorch's and ONNX's layout), bias `[Cout]`;
    /// `output_padding` (less than the stride) adds rows and columns at the end that only the
    /// bias reaches. `groups` and `dilation` as for `conv2d`.
    ConvTranspose2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        output_padding: usize,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        groups: usize,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        dilation: usize,
    },
}

/// The most inputs a [`Op::Concat`] reads.
pub const MAX_CONCAT_INPUTS: usize = 64;

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        struct Fields {
            name: String,
            inputs: Vec<String>,
            #[serde(flatten)]
            op: serde_json::Map<String, serde_json::Value>,
        }
        let fields = Fields::deserialize(deserializer)?;
        let hint = "advlens reads only the fields listed in docs/bundle-format.md; a model that needs more cannot run here";
        let given: Vec<String> = fields.op.keys().cloned().collect();
        let op = Op::deserialize(serde_json::Value::Object(fields.op)).map_err(|e| D::Error::custom(format!("node `{}`: {e} ({hint})", fields.name)))?;
        // Unit variants (`relu`, `flatten`, ...) ignore extra fields even with deny_unknown_fields
        // (struct variants refuse them themselves): such an op reads nothing but `op`.
        let fieldless = serde_json::to_value(&op).map_err(D::Error::custom)?.as_object().is_some_and(|o| o.len() == 1);
        if let Some(extra) = given.iter().find(|k| fieldless && k.as_str() != "op") {
            return Err(D::Error::custom(format!("node `{}`: unknown field `{extra}` for op `{}` ({hint})", fields.name, op.kind())));
        }
        Ok(Node { name: fields.name, inputs: fields.inputs, op })
    }
}

/// Where a model came from. Free-form fields are allowed under `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_mode: Option<String>,
    /// Perturbation budget of adversarial training (L-inf, on the [0, 1] scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Weight of the consistent loss's feature term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    /// Top-1 accuracy on the clean test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_accuracy: Option<f64>,
    /// Top-1 accuracy under attack, by attack name (e.g. `pgd20`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub robust_accuracy: std::collections::BTreeMap<String, f64>,
    /// Export date, `YYYY-MM-DD` (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Provenance {
    /// The budget to attack this model at: its training epsilon, else the one it was evaluated
    /// at (the `@eps` of its robust-accuracy entries, e.g. `pgd20@0.1`). The explorer's and
    /// `advlens perturb`'s default.
    pub fn attack_epsilon(&self) -> Option<f64> {
        let evaluated = self.robust_accuracy.keys().filter_map(|k| k.split_once('@')?.1.parse::<f64>().ok()).find(|e| *e > 0.0 && *e <= 1.0);
        self.epsilon.or(evaluated)
    }
}

impl Op {
    /// The names and shapes of the weight tensors this op needs.
    pub fn weight_shapes(&self, node: &str) -> Vec<(String, Vec<usize>)> {
        match *self {
            Op::Conv2d { in_channels, out_channels, kernel, groups, .. } => vec![
                (format!("{node}.weight"), vec![out_channels, in_channels / groups.max(1), kernel, kernel]),
                (format!("{node}.bias"), vec![out_channels]),
            ],
            Op::ConvTranspose2d { in_channels, out_channels, kernel, groups, .. } => vec![
                (format!("{node}.weight"), vec![in_channels, out_channels / groups.max(1), kernel, kernel]),
                (format!("{node}.bias"), vec![out_channels]),
            ],
            Op::Linear { in_features, out_features } => vec![
                (format!("{node}.weight"), vec![out_features, in_features]),
                (format!("{node}.bias"), vec![out_features]),
            ],
            Op::ChannelNorm { channels, .. } | Op::InstanceNorm { channels, .. } => ["weight", "bias"].iter().map(|leaf| (format!("{node}.{leaf}"), vec![channels])).collect(),
            Op::BatchNorm2d { channels, .. } => ["weight", "bias", "running_mean", "running_var"]
                .iter()
                .map(|leaf| (format!("{node}.{leaf}"), vec![channels]))
                .collect(),
            Op::Relu
            | Op::Clip { .. }
            | Op::Sigmoid
            | Op::LeakyRelu { .. }
            | Op::MaxPool2d { .. }
            | Op::AvgPool2d { .. }
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Dropout
            | Op::Add
            | Op::Concat
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::Gelu
            | Op::Mul
            | Op::Pad2d { .. }
            | Op::Upsample2d { .. }
            | Op::ResizeBilinear { .. }
            | Op::SliceChannels { .. } => vec![],
        }
    }

    /// The name of the op as written in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::Relu => "relu",
            Op::MaxPool2d { .. } => "max_pool2d",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
            Op::Dropout => "dropout",
            Op::BatchNorm2d { .. } => "batch_norm2d",
            Op::AvgPool2d { .. } => "avg_pool2d",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Add => "add",
            Op::Clip { .. } => "clip",
            Op::Sigmoid => "sigmoid",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Concat => "concat",
            Op::HardSigmoid { .. } => "hard_sigmoid",
            Op::HardSwish => "hard_swish",
            Op::Gelu => "gelu",
            Op::ChannelNorm { .. } => "channel_norm",
            Op::InstanceNorm { .. } => "instance_norm",
            Op::Mul => "mul",
            Op::Pad2d { .. } => "pad2d",
            Op::Upsample2d { .. } => "upsample2d",
            Op::ResizeBilinear { .. } => "resize_bilinear",
            Op::SliceChannels { .. } => "slice_channels",
            Op::ConvTranspose2d { .. } => "conv_transpose2d",
        }
    }

    /// How many inputs the op reads.
    pub fn arity(&self) -> std::ops::RangeInclusive<usize> {
        match self {
            Op::Add | Op::Mul => 2..=2,
            Op::Concat => 2..=MAX_CONCAT_INPUTS,
            _ => 1..=1,
        }
    }

    /// Whether the op is a pointwise nonlinearity: its outputs are the neurons that the
    /// analyses, the atlas and the explorer look at (a ReLU's, a ReLU6's, a sigmoid's...).
    pub fn is_activation(&self) -> bool {
        matches!(self, Op::Relu | Op::Clip { .. } | Op::Sigmoid | Op::LeakyRelu { .. } | Op::HardSwish | Op::Gelu)
    }
}
