//! Seeded random models and images for tests and benchmarks, without dependencies so that
//! the same cases run natively, in wasm32 and against libtorch.

use std::collections::HashMap;

use crate::model::{Bundle, InputSpec, ModelSpec, Node, Op, FORMAT_NAME, FORMAT_VERSION, INPUT_NAME};
use crate::Tensor;

/// The crate's SplitMix64 seeded directly with `seed`, with an f32 helper for test data.
#[derive(Clone, Debug)]
pub struct Rng(crate::rng::SplitMix);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(crate::rng::SplitMix::from_state(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

/// A seed that differs on every run (time-based), printed by tests so failures can be replayed:
/// natively, `ADVLENS_TEST_SEED=N` makes every call return `N`.
pub fn fresh_seed() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (js_sys::Date::now() * 1000.0) as u64 ^ (js_sys::Math::random() * 1e15) as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        if let Some(seed) = std::env::var("ADVLENS_TEST_SEED").ok().and_then(|s| s.parse().ok()) {
            return seed;
        }
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }
}

/// Images `[n, c, h, w]` uniform in [0, 1].
pub fn random_images(rng: &mut Rng, shape: [usize; 4]) -> Tensor {
    let len = shape.iter().product();
    let data = (0..len).map(|_| rng.uniform(0.0, 1.0)).collect();
    Tensor::new(shape.to_vec(), data).expect("length matches shape")
}

/// Weights for every node of `spec`, uniform in +-1/sqrt(fan_in) (PyTorch's default range).
pub fn random_weights(rng: &mut Rng, spec: &ModelSpec) -> HashMap<String, Tensor> {
    let mut weights = HashMap::new();
    for node in &spec.nodes {
        let shapes = node.op.weight_shapes(&node.name);
        let fan_in = shapes.first().map_or(1, |(_, s)| s[1..].iter().product::<usize>());
        let bound = 1.0 / (fan_in as f32).sqrt();
        for (name, shape) in shapes {
            let len = shape.iter().product();
            // Batch-norm statistics need their own ranges (a variance is positive).
            let (lo, hi) = match (&node.op, name.rsplit('.').next()) {
                (Op::BatchNorm2d { .. }, Some("weight" | "running_var")) => (0.5, 1.5),
                (Op::BatchNorm2d { .. }, _) => (-0.5, 0.5),
                _ => (-bound, bound),
            };
            let data = (0..len).map(|_| rng.uniform(lo, hi)).collect();
            weights.insert(name, Tensor::new(shape, data).expect("length matches shape"));
        }
    }
    weights
}

/// A spec around `nodes` (in order, each reading the previous one); the last node is the output.
pub fn chain_spec(input: [usize; 3], ops: Vec<Op>, classes: usize) -> ModelSpec {
    let mut nodes = Vec::new();
    let mut prev = INPUT_NAME.to_string();
    for (i, op) in ops.into_iter().enumerate() {
        let name = format!("{}{i}", op.kind());
        nodes.push(Node { name: name.clone(), inputs: vec![prev], op });
        prev = name;
    }
    let [c, h, w] = input;
    ModelSpec {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name: "random".into(),
        input: InputSpec { channels: c, height: h, width: w, mean: vec![0.45; c], std: vec![0.25; c] },
        classes: (0..classes).map(|i| format!("class {i}")).collect(),
        nodes,
        output: prev,
        hierarchy: Default::default(),
        provenance: Default::default(),
    }
}

/// The architectures every engine is checked on: each layer type with strides, paddings,
/// odd sizes and several channels.
pub fn reference_cases() -> Vec<(&'static str, ModelSpec)> {
    let conv = |cin, cout, k, s, p| Op::Conv2d { in_channels: cin, out_channels: cout, kernel: k, stride: s, padding: p, groups: 1, dilation: 1 };
    let pool = |k, s, p| Op::MaxPool2d { kernel: k, stride: s, padding: p };
    let linear = |i, o| Op::Linear { in_features: i, out_features: o };
    vec![
        (
            "mnist-like: conv3/pad1, pool2, conv3, pool2, linear",
            chain_spec(
                [1, 28, 28],
                vec![conv(1, 8, 3, 1, 1), Op::Relu, pool(2, 2, 0), conv(8, 16, 3, 1, 1), Op::Relu, pool(2, 2, 0), Op::Flatten, linear(16 * 7 * 7, 10)],
                10,
            ),
        ),
        (
            "rgb: conv5/stride2/pad2, overlapping padded pool, 1x1 conv",
            chain_spec(
                [3, 32, 32],
                vec![conv(3, 6, 5, 2, 2), Op::Relu, pool(3, 2, 1), conv(6, 4, 1, 1, 0), Op::Flatten, linear(4 * 8 * 8, 7)],
                7,
            ),
        ),
        (
            "odd sizes: 13x11, conv3/stride2, pool3/stride1/pad1, dropout, two linears",
            chain_spec(
                [2, 13, 11],
                vec![conv(2, 5, 3, 2, 0), pool(3, 1, 1), Op::Dropout, Op::Flatten, linear(5 * 6 * 5, 12), Op::Relu, linear(12, 3)],
                3,
            ),
        ),
        (
            "avg pool with padding, batch norm, global average pool",
            chain_spec(
                [3, 12, 12],
                vec![
                    conv(3, 6, 3, 1, 1),
                    Op::BatchNorm2d { channels: 6, eps: 1e-5 },
                    Op::Relu,
                    Op::AvgPool2d { kernel: 3, stride: 2, padding: 1 },
                    conv(6, 5, 3, 1, 0),
                    Op::GlobalAvgPool,
                    linear(5, 4),
                ],
                4,
            ),
        ),
        ("residual block (a DAG with add)", residual_spec()),
        (
            "grouped (2 groups) and depthwise convolutions",
            chain_spec(
                [4, 10, 10],
                vec![
                    Op::Conv2d { in_channels: 4, out_channels: 6, kernel: 3, stride: 1, padding: 1, groups: 2, dilation: 1 },
                    Op::Relu,
                    Op::Conv2d { in_channels: 6, out_channels: 6, kernel: 3, stride: 2, padding: 1, groups: 6, dilation: 1 },
                    Op::Flatten,
                    linear(6 * 5 * 5, 3),
                ],
                3,
            ),
        ),
        (
            "clip (ReLU6-like, bounds 0 and 0.5) after a conv",
            chain_spec([2, 9, 9], vec![conv(2, 4, 3, 1, 1), Op::Clip { min: 0.0, max: 0.5 }, pool(2, 2, 0), Op::Flatten, linear(4 * 4 * 4, 3)], 3),
        ),
        (
            "dilated convolutions (2 with padding 2, 3 with stride 2), leaky ReLU, sigmoid",
            chain_spec(
                [2, 15, 13],
                vec![
                    Op::Conv2d { in_channels: 2, out_channels: 4, kernel: 3, stride: 1, padding: 2, groups: 1, dilation: 2 },
                    Op::LeakyRelu { alpha: 0.2 },
                    Op::Conv2d { in_channels: 4, out_channels: 3, kernel: 3, stride: 2, padding: 1, groups: 1, dilation: 3 },
                    Op::Sigmoid,
                    Op::Flatten,
                    linear(3 * 6 * 5, 4),
                ],
                4,
            ),
        ),
        (
            "unequal zero padding (Keras's `same` at stride 2: one more pixel right and below) before unpadded convolutions",
            chain_spec(
                [2, 9, 8],
                vec![
                    Op::Pad2d { top: 0, left: 1, bottom: 1, right: 2 },
                    conv(2, 4, 3, 2, 0),
                    Op::LeakyRelu { alpha: 0.1 },
                    Op::Pad2d { top: 2, left: 0, bottom: 1, right: 0 },
                    conv(4, 3, 3, 1, 1),
                    Op::Flatten,
                    linear(3 * 7 * 5, 3),
                ],
                3,
            ),
        ),
        (
            "transposed convolutions (stride 2 with output padding; grouped and dilated)",
            chain_spec(
                [2, 9, 8],
                vec![
                    conv(2, 4, 3, 2, 1),
                    Op::LeakyRelu { alpha: 0.1 },
                    Op::ConvTranspose2d { in_channels: 4, out_channels: 3, kernel: 3, stride: 2, padding: 1, output_padding: 1, groups: 1, dilation: 1 },
                    Op::LeakyRelu { alpha: 0.1 },
                    Op::ConvTranspose2d { in_channels: 3, out_channels: 6, kernel: 2, stride: 1, padding: 0, output_padding: 0, groups: 3, dilation: 2 },
                    Op::Sigmoid,
                    Op::Flatten,
                    linear(6 * 12 * 10, 3),
                ],
                3,
            ),
        ),
        (
            "nearest upsampling by 2 and by 3 around a strided convolution",
            chain_spec(
                [2, 5, 4],
                vec![
                    conv(2, 3, 3, 1, 1),
                    Op::LeakyRelu { alpha: 0.1 },
                    Op::Upsample2d { scale: 2 },
                    conv(3, 4, 3, 2, 1),
                    Op::Upsample2d { scale: 3 },
                    Op::Sigmoid,
                    Op::Flatten,
                    linear(4 * 15 * 12, 3),
                ],
                3,
            ),
        ),
        ("concatenated branches (Inception-like, one branch read twice)", concat_spec()),
        ("channel slices: a split, an overlapping slice, a slice of pooled features", split_spec()),
        (
            "ConvNeXt pieces: layer norm over the channels of a map and of pooled features, exact GELU",
            chain_spec(
                [3, 9, 8],
                vec![
                    conv(3, 6, 3, 1, 1),
                    Op::ChannelNorm { channels: 6, eps: 1e-6 },
                    conv(6, 10, 1, 1, 0),
                    Op::Gelu,
                    conv(10, 6, 1, 1, 0),
                    Op::GlobalAvgPool,
                    Op::ChannelNorm { channels: 6, eps: 1e-6 },
                    linear(6, 4),
                ],
                4,
            ),
        ),
        (
            "bilinear upsampling by 2 (half-pixel centres) and by 3 (corners aligned)",
            chain_spec(
                [2, 4, 3],
                vec![
                    conv(2, 3, 3, 1, 1),
                    Op::ResizeBilinear { scale: 2, align_corners: false },
                    Op::LeakyRelu { alpha: 0.1 },
                    conv(3, 2, 3, 2, 1),
                    Op::ResizeBilinear { scale: 3, align_corners: true },
                    Op::Flatten,
                    linear(2 * 12 * 9, 3),
                ],
                3,
            ),
        ),
        (
            // Planes of 42 pixels: on a 4x3 plane a random convolution's output can have so little
            // variance that the normalisation's curvature spoils a float32 finite difference.
            "instance norm (style-transfer networks) on 7x6 planes",
            chain_spec(
                [3, 7, 6],
                vec![
                    conv(3, 5, 3, 1, 1),
                    Op::InstanceNorm { channels: 5, eps: 1e-5 },
                    Op::LeakyRelu { alpha: 0.1 },
                    conv(5, 4, 3, 1, 1),
                    Op::InstanceNorm { channels: 4, eps: 1e-3 },
                    Op::Flatten,
                    linear(4 * 7 * 6, 3),
                ],
                3,
            ),
        ),
        ("squeeze-and-excitation gate, SiLU as x * sigmoid(x), hard swish", gate_spec()),
        (
            "kernels wider than their input (5x5 with padding 2 on 3x1, as deep in EfficientNet at 32 px)",
            // A leaky ReLU: with 9 units, a plain one is dead everywhere often enough to zero the
            // gradient that the tests compare.
            chain_spec([2, 3, 1], vec![conv(2, 3, 5, 1, 2), Op::LeakyRelu { alpha: 0.1 }, conv(3, 2, 5, 2, 2), Op::Flatten, linear(2 * 2 * 1, 3)], 3),
        ),
        (
            "matrix-product tiles: 7 and 13 channels, stride-2 3x3, pointwise 1x1, 2x2 pool on an odd map, 17 units",
            // Channel and unit counts that are multiples of no tile size (4, 6, 8, 16), a 1x1
            // convolution that skips im2col, and a pooled map whose last row is dropped.
            chain_spec(
                [3, 19, 17],
                vec![
                    conv(3, 7, 3, 2, 1),
                    Op::LeakyRelu { alpha: 0.1 },
                    conv(7, 13, 1, 1, 0),
                    pool(2, 2, 0),
                    Op::Flatten,
                    linear(13 * 5 * 4, 17),
                    Op::LeakyRelu { alpha: 0.1 },
                    linear(17, 5),
                ],
                5,
            ),
        ),
        (
            "strided gradients on 8 and 12 channels: 3x3 and 1x1 at stride 2 (d_y read dilated by the tiled product)",
            chain_spec(
                [3, 21, 19],
                vec![
                    conv(3, 8, 3, 1, 1),
                    Op::LeakyRelu { alpha: 0.1 },
                    conv(8, 12, 3, 2, 1),
                    Op::LeakyRelu { alpha: 0.1 },
                    conv(12, 8, 1, 2, 0),
                    Op::Flatten,
                    linear(8 * 6 * 5, 5),
                ],
                5,
            ),
        ),
    ]
}

/// MobileNetV3 / EfficientNet pieces: a conv with hard swish, a squeeze-and-excitation gate
/// (global pool, two linear layers, hard sigmoid) multiplied into the maps per channel, and a
/// SiLU (`x * sigmoid(x)`, a product of two equal shapes) before the head.
pub fn gate_spec() -> ModelSpec {
    let conv = Op::Conv2d { in_channels: 3, out_channels: 6, kernel: 3, stride: 2, padding: 1, groups: 1, dilation: 1 };
    let node = |name: &str, inputs: &[&str], op| Node { name: name.into(), inputs: inputs.iter().map(|s| s.to_string()).collect(), op };
    let mut spec = chain_spec([3, 10, 9], vec![Op::Relu], 4);
    spec.nodes = vec![
        node("stem", &[INPUT_NAME], conv),
        node("stem_act", &["stem"], Op::HardSwish),
        node("squeeze", &["stem_act"], Op::GlobalAvgPool),
        node("reduce", &["squeeze"], Op::Linear { in_features: 6, out_features: 3 }),
        node("reduce_act", &["reduce"], Op::Relu),
        node("expand", &["reduce_act"], Op::Linear { in_features: 3, out_features: 6 }),
        node("gate", &["expand"], Op::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 }),
        node("excited", &["stem_act", "gate"], Op::Mul),
        node("excited_sigmoid", &["excited"], Op::Sigmoid),
        node("silu", &["excited", "excited_sigmoid"], Op::Mul),
        node("flat", &["silu"], Op::Flatten),
        node("head", &["flat"], Op::Linear { in_features: 6 * 5 * 5, out_features: 4 }),
    ];
    spec.output = "head".into();
    spec
}

/// GhostNet / CSP pieces: the stem's channels split in two (one half convolved, one passed on),
/// a third slice overlapping both (its gradient adds to theirs), joined again; after the global
/// pool a slice of the pooled features feeds the head.
pub fn split_spec() -> ModelSpec {
    let conv = |cin, cout| Op::Conv2d { in_channels: cin, out_channels: cout, kernel: 3, stride: 1, padding: 1, groups: 1, dilation: 1 };
    let node = |name: &str, inputs: &[&str], op| Node { name: name.into(), inputs: inputs.iter().map(|s| s.to_string()).collect(), op };
    let mut spec = chain_spec([2, 7, 6], vec![Op::Relu], 3);
    spec.nodes = vec![
        node("stem", &[INPUT_NAME], conv(2, 6)),
        node("stem_act", &["stem"], Op::LeakyRelu { alpha: 0.1 }),
        node("passed", &["stem_act"], Op::SliceChannels { start: 0, end: 2 }),
        node("rest", &["stem_act"], Op::SliceChannels { start: 2, end: 6 }),
        node("rest_conv", &["rest"], conv(4, 3)),
        node("rest_act", &["rest_conv"], Op::Sigmoid),
        node("middle", &["stem_act"], Op::SliceChannels { start: 1, end: 4 }),
        node("joined", &["passed", "rest_act", "middle"], Op::Concat),
        node("gap", &["joined"], Op::GlobalAvgPool),
        node("features", &["gap"], Op::SliceChannels { start: 1, end: 7 }),
        node("head", &["features"], Op::Linear { in_features: 6, out_features: 3 }),
    ];
    spec.output = "head".into();
    spec
}

/// A stem, three branches (1x1 conv, 3x3 conv + leaky ReLU, pooling) joined by a channel
/// concatenation that reads one branch twice, then a global average pool and a linear head.
pub fn concat_spec() -> ModelSpec {
    let conv = |cin, cout, k, p| Op::Conv2d { in_channels: cin, out_channels: cout, kernel: k, stride: 1, padding: p, groups: 1, dilation: 1 };
    let node = |name: &str, inputs: &[&str], op| Node { name: name.into(), inputs: inputs.iter().map(|s| s.to_string()).collect(), op };
    let mut spec = chain_spec([3, 11, 9], vec![Op::Relu], 5);
    spec.nodes = vec![
        node("stem", &[INPUT_NAME], conv(3, 4, 3, 1)),
        node("stem_relu", &["stem"], Op::Relu),
        node("branch_1x1", &["stem_relu"], conv(4, 3, 1, 0)),
        node("branch_3x3", &["stem_relu"], conv(4, 2, 3, 1)),
        node("branch_3x3_act", &["branch_3x3"], Op::LeakyRelu { alpha: 0.1 }),
        node("branch_pool", &["stem_relu"], Op::MaxPool2d { kernel: 3, stride: 1, padding: 1 }),
        node("joined", &["branch_1x1", "branch_3x3_act", "branch_pool", "branch_1x1"], Op::Concat),
        node("joined_relu", &["joined"], Op::Relu),
        node("gap", &["joined_relu"], Op::GlobalAvgPool),
        node("head", &["gap"], Op::Linear { in_features: 12, out_features: 5 }),
    ];
    spec.output = "head".into();
    spec
}

/// conv-bn-relu, then a residual block `relu(x + bn(conv(x)))`, pooling and a linear head.
pub fn residual_spec() -> ModelSpec {
    let conv = |cin, cout| Op::Conv2d { in_channels: cin, out_channels: cout, kernel: 3, stride: 1, padding: 1, groups: 1, dilation: 1 };
    let node = |name: &str, inputs: &[&str], op| Node { name: name.into(), inputs: inputs.iter().map(|s| s.to_string()).collect(), op };
    let mut spec = chain_spec([3, 16, 16], vec![Op::Relu], 5);
    spec.nodes = vec![
        node("stem", &[INPUT_NAME], conv(3, 8)),
        node("stem_bn", &["stem"], Op::BatchNorm2d { channels: 8, eps: 1e-5 }),
        node("stem_relu", &["stem_bn"], Op::Relu),
        node("block_conv", &["stem_relu"], conv(8, 8)),
        node("block_bn", &["block_conv"], Op::BatchNorm2d { channels: 8, eps: 1e-5 }),
        node("block_add", &["stem_relu", "block_bn"], Op::Add),
        node("block_relu", &["block_add"], Op::Relu),
        node("pool", &["block_relu"], Op::MaxPool2d { kernel: 2, stride: 2, padding: 0 }),
        node("gap", &["pool"], Op::GlobalAvgPool),
        node("head", &["gap"], Op::Linear { in_features: 8, out_features: 5 }),
    ];
    spec.output = "head".into();
    spec
}

/// A random bundle of architecture `spec`.
pub fn random_bundle(rng: &mut Rng, spec: ModelSpec) -> Bundle {
    let weights = random_weights(rng, &spec);
    Bundle::new(spec, weights).expect("reference cases are valid")
}

/// Largest `|a - b| / max(1, |b|)`: for values such as logits.
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared tensors differ in length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f32::max)
}

/// Largest `|a - b|` relative to the largest `|b|`: for whole tensors such as gradients,
/// whose entries are small.
pub fn max_scaled_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared tensors differ in length");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

/// `concepts::fingerprint` of images 0..24 of seed 2026 at 32 px, as computed natively. The
/// native test (`tests/concepts.rs`) and the wasm32 test (`tests/browser.rs`) both compare with
/// it, which shows the generator gives the same bytes on both. A deliberate change to the
/// generator changes it: update it here.
pub const CONCEPTS_FINGERPRINT_2026_32: u64 = 1545312318804269634;
