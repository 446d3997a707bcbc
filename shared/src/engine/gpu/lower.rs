//! Lowering: a model, a batch size and a request become a [`Plan`] — the buffers one call needs
//! and the kernel passes over them, in order — without a device. The runtime allocates a plan's
//! buffers, uniforms and bind groups once and replays its passes on every call of that shape;
//! the tests check plans on machines without a GPU.
//!
//! The math is `engine::cpu`'s; backward kernels gather instead of scatter so that none needs
//! atomics.

use std::collections::HashMap;

use super::kernels::*;
use crate::engine::cpu::{padding, slice_geometry, transposed_window, window};
use crate::model::{Bundle, Node, Op, INPUT_NAME};

/// What a call computes; a plan is made (and cached) per request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// Every node's output, with a channel mask after each node of `masked` (in graph order).
    Forward { batch: usize, masked: Vec<String> },
    /// The forward pass, then the gradient of an objective on `target`'s output with respect to
    /// the image and to the outputs of `wrt`; `objective` is its kind and class or channel
    /// (`Objective::code`), whose value and seed the backward stage's first pass computes.
    Gradient { batch: usize, target: String, wrt: Vec<String>, objective: (u32, u32) },
}

/// A buffer a pass binds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Buf {
    /// A model tensor uploaded with the engine (`<node>.<leaf>`; batch norms folded into
    /// `<node>.scale` and `<node>.shift`).
    Weight(String),
    /// `[mean.., std..]` of the input normalisation.
    Stats,
    /// `1 / std` of each input channel.
    InvStd,
    /// One of the plan's own buffers, by index into [`Plan::values`].
    Value(usize),
}

/// A buffer of `len` floats that a plan owns. Buffers start zeroed and a plan never writes a
/// value it does not compute, so a value no pass writes reads as zeros on every call.
#[derive(Clone, Debug)]
pub struct Value {
    pub label: String,
    pub len: usize,
}

/// One kernel dispatch: `workgroups` workgroups (of 64 invocations) of `entry` over
/// `bindings`, with `params` (the kernel's typed uniform block, as bytes) at binding 4.
#[derive(Clone, Debug)]
pub struct Pass {
    pub entry: &'static str,
    pub bindings: Vec<(u32, Buf)>,
    pub params: Vec<u8>,
    pub workgroups: usize,
}

/// Invocations per workgroup of every kernel.
pub const WORKGROUP: usize = 64;

/// The tiled product pays for its tiles' loads and barriers once there is a tile of work per
/// workgroup several times over; below that the one-invocation-per-output kernels win.
const MIN_TILES: usize = 4;

/// Channels of a strided convolution's input gradient from which its tiled product (which also
/// multiplies the zeros of the dilated `d_y`) beats the one-invocation-per-value kernel.
const MIN_STRIDED_GRADIENT_CHANNELS: usize = 8;

/// The gradient half of a plan.
#[derive(Clone, Debug)]
pub struct GradientPlan {
    pub target: String,
    /// d objective / d target, written by the first pass of the backward stage.
    pub seed: usize,
    /// The objective's value for each image.
    pub values: usize,
    /// d objective / d image.
    pub d_image: usize,
    /// d objective / d output of each requested node reached by the gradient.
    pub kept: Vec<(String, usize)>,
}

/// The buffers and passes of one request.
#[derive(Clone, Debug)]
pub struct Plan {
    pub values: Vec<Value>,
    /// The forward pass and, for a gradient, the backward pass (one compute pass each, encoded
    /// into the call's one submission).
    pub stages: Vec<Vec<Pass>>,
    /// The images `[N, C, H, W]` in [0, 1], written by the host.
    pub image: usize,
    /// The output of every node (and of [`INPUT_NAME`], the normalised image).
    pub acts: HashMap<String, usize>,
    /// The per-channel 0/1 mask of each masked node, written by the host.
    pub masks: Vec<(String, usize)>,
    pub gradient: Option<GradientPlan>,
}

/// Lowers `request` on `bundle` (validated: every shape is known).
pub fn lower(bundle: &Bundle, request: &Request) -> Plan {
    let (batch, masked): (usize, &[String]) = match request {
        Request::Forward { batch, masked } => (*batch, masked),
        Request::Gradient { batch, .. } => (*batch, &[]),
    };
    let mut b = Builder { bundle, batch, values: Vec::new(), passes: Vec::new() };
    let (image, acts, masks) = b.forward(masked);
    let mut plan = Plan { values: Vec::new(), stages: vec![std::mem::take(&mut b.passes)], image, acts, masks, gradient: None };
    if let Request::Gradient { target, wrt, objective, .. } = request {
        let gradient = b.backward(&plan.acts, target, wrt, *objective);
        plan.stages.push(std::mem::take(&mut b.passes));
        plan.gradient = Some(gradient);
    }
    plan.values = b.values;
    plan
}

struct Builder<'b> {
    bundle: &'b Bundle,
    batch: usize,
    values: Vec<Value>,
    passes: Vec<Pass>,
}

impl Builder<'_> {
    fn value(&mut self, label: &str, len: usize) -> usize {
        self.values.push(Value { label: label.to_string(), len });
        self.values.len() - 1
    }

    /// A kernel with one invocation per output value (`invocations` of them).
    fn pass<P: Params>(&mut self, kernel: Kernel<P>, bindings: &[(u32, &Buf)], params: P, invocations: usize) {
        self.dispatch(kernel, bindings, params, invocations.div_ceil(WORKGROUP).max(1));
    }

    fn dispatch<P: Params>(&mut self, kernel: Kernel<P>, bindings: &[(u32, &Buf)], params: P, workgroups: usize) {
        let bindings = bindings.iter().map(|(slot, buf)| (*slot, (*buf).clone())).collect();
        self.passes.push(Pass { entry: kernel.entry, bindings, params: bytemuck::bytes_of(&params).to_vec(), workgroups });
    }

    /// `y = W x + b` of a convolution without groups (or a dense layer): tiled when large enough.
    fn product<P: Params>(&mut self, naive: Kernel<P>, naive_params: P, tiled: Conv, bindings: &[(u32, &Buf)], len: usize) {
        if tiled.groups == 1 && tiled.tiles() >= MIN_TILES {
            self.dispatch(CONV2D_TILED, bindings, tiled, tiled.tiles());
        } else {
            self.pass(naive, bindings, naive_params, len);
        }
    }

    /// Values per image of `name`'s output.
    fn size(&self, name: &str) -> usize {
        self.bundle.shape_of(name).expect("validated").iter().product()
    }

    fn forward(&mut self, masked: &[String]) -> (usize, HashMap<String, usize>, Vec<(String, usize)>) {
        let bundle = self.bundle;
        let batch = self.batch;
        let [c, h, w] = bundle.input_shape();
        let len = batch * c * h * w;
        let image = self.value("image", len);
        let normalized = self.value(INPUT_NAME, len);
        self.pass(NORMALIZE_FORWARD, &[(0, &Buf::Value(image)), (1, &Buf::Stats), (3, &Buf::Value(normalized))], PerChannel::new(len, c, h * w), len);
        let mut acts = HashMap::from([(INPUT_NAME.to_string(), normalized)]);
        let mut masks = Vec::new();
        for node in &bundle.spec().nodes {
            let mut y = self.node_forward(node, &acts);
            if masked.contains(&node.name) {
                let channels = bundle.shape_of(&node.name).expect("validated")[0];
                let len = batch * self.size(&node.name);
                let mask = self.value("ablation mask", channels);
                let out = self.value(&node.name, len);
                let params = PerChannel::new(len, channels, len / batch / channels);
                self.pass(CHANNEL_SCALE, &[(0, &Buf::Value(y)), (1, &Buf::Value(mask)), (3, &Buf::Value(out))], params, len);
                masks.push((node.name.clone(), mask));
                y = out;
            }
            acts.insert(node.name.clone(), y);
        }
        (image, acts, masks)
    }

    /// Records `node`'s forward kernel(s); returns its output value.
    fn node_forward(&mut self, node: &Node, acts: &HashMap<String, usize>) -> usize {
        let bundle = self.bundle;
        let batch = self.batch;
        let in_shape = bundle.shape_of(&node.inputs[0]).expect("validated");
        let out_shape = bundle.shape_of(&node.name).expect("validated");
        let len = batch * out_shape.iter().product::<usize>();
        let x = Buf::Value(acts[&node.inputs[0]]);
        let weight = |leaf: &str| Buf::Weight(format!("{}.{leaf}", node.name));
        // Same data, same layout: share the buffer.
        if matches!(node.op, Op::Flatten | Op::Dropout) {
            return acts[&node.inputs[0]];
        }
        let y = self.value(&node.name, len);
        let out = Buf::Value(y);
        match node.op {
            Op::Conv2d { out_channels, kernel, stride, padding, groups, dilation, .. } => {
                let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                let params = Conv::from_window(&g, out_channels, kernel, stride, padding, groups, dilation);
                self.product(CONV2D_FORWARD, params, params, &[(0, &x), (1, &weight("weight")), (2, &weight("bias")), (3, &out)], len);
            }
            Op::ConvTranspose2d { in_channels, out_channels, kernel, stride, padding, groups, dilation, .. } => {
                // The input gradient of the convolution it transposes, then the bias.
                let g = transposed_window(batch, in_shape, out_shape, kernel, stride, padding, dilation);
                let params = Conv::from_window(&g, in_channels, kernel, stride, padding, groups, dilation);
                self.pass(CONV2D_BACKWARD, &[(0, &x), (1, &weight("weight")), (3, &out)], params, len);
                let params = PerChannel::new(len, out_channels, g.height * g.width);
                self.pass(ADD_CHANNEL_BIAS, &[(1, &weight("bias")), (3, &out)], params, len);
            }
            Op::MaxPool2d { kernel, stride, padding } | Op::AvgPool2d { kernel, stride, padding } => {
                let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                let kernel_fn = if matches!(node.op, Op::MaxPool2d { .. }) { MAX_POOL2D_FORWARD } else { AVG_POOL2D_FORWARD };
                self.pass(kernel_fn, &[(0, &x), (3, &out)], Pool::from_window(&g, kernel, stride, padding), len);
            }
            Op::Linear { in_features, out_features } => {
                let params = Linear { batch: batch as u32, in_features: in_features as u32, out_features: out_features as u32, _pad: 0 };
                let bindings = [(0, &x), (1, &weight("weight")), (2, &weight("bias")), (3, &out)];
                self.product(LINEAR_FORWARD, params, Conv::dense(batch, in_features, out_features), &bindings, len);
            }
            Op::GlobalAvgPool => {
                let params = GlobalPool { planes: len as u32, plane: (in_shape[1] * in_shape[2]) as u32, ..Default::default() };
                self.pass(GLOBAL_AVG_POOL_FORWARD, &[(0, &x), (3, &out)], params, len);
            }
            Op::BatchNorm2d { channels, .. } => {
                let params = PerChannel::new(len, channels, in_shape[1] * in_shape[2]);
                self.pass(BATCH_NORM_FORWARD, &[(0, &x), (1, &weight("scale")), (2, &weight("shift")), (3, &out)], params, len);
            }
            Op::Add => {
                let b = Buf::Value(acts[&node.inputs[1]]);
                self.pass(ADD_FORWARD, &[(0, &x), (1, &b), (3, &out)], Elementwise::new(len), len);
            }
            Op::Mul => {
                let b = Buf::Value(acts[&node.inputs[1]]);
                let plane = in_shape.iter().product::<usize>() / self.size(&node.inputs[1]);
                let params = Broadcast { len: len as u32, plane: plane as u32, ..Default::default() };
                self.pass(MUL_FORWARD, &[(0, &x), (1, &b), (3, &out)], params, len);
            }
            Op::Relu => self.pass(RELU_FORWARD, &[(0, &x), (3, &out)], Elementwise::new(len), len),
            // The activation kernels read x through binding 1 (binding 0 is the gradient).
            Op::Clip { min, max } => self.pass(CLIP_FORWARD, &[(1, &x), (3, &out)], Activation::new(len, min, max), len),
            Op::Sigmoid => self.pass(SIGMOID_FORWARD, &[(1, &x), (3, &out)], Activation::new(len, 0.0, 0.0), len),
            Op::LeakyRelu { alpha } => self.pass(LEAKY_RELU_FORWARD, &[(1, &x), (3, &out)], Activation::new(len, alpha, 0.0), len),
            Op::HardSigmoid { alpha, beta } => self.pass(HARD_SIGMOID_FORWARD, &[(1, &x), (3, &out)], Activation::new(len, alpha, beta), len),
            Op::HardSwish => self.pass(HARD_SWISH_FORWARD, &[(1, &x), (3, &out)], Activation::new(len, 0.0, 0.0), len),
            Op::Gelu => self.pass(GELU_FORWARD, &[(1, &x), (3, &out)], Activation::new(len, 0.0, 0.0), len),
            Op::ChannelNorm { channels, eps } => {
                let params = Norm::new(len / channels, channels, in_shape[1..].iter().product(), eps);
                self.pass(CHANNEL_NORM_FORWARD, &[(0, &weight("weight")), (1, &x), (2, &weight("bias")), (3, &out)], params, len / channels);
            }
            Op::InstanceNorm { channels, eps } => {
                let plane: usize = in_shape[1..].iter().product();
                let params = InstanceNorm::new(len / plane, channels, plane, eps);
                self.pass(INSTANCE_NORM_FORWARD, &[(0, &weight("weight")), (1, &x), (2, &weight("bias")), (3, &out)], params, len / plane);
            }
            Op::Concat => {
                let total = len / batch;
                let mut offset = 0;
                for source in &node.inputs {
                    let part = self.size(source);
                    let params = Concat { len: (batch * part) as u32, part: part as u32, total: total as u32, offset: offset as u32 };
                    self.pass(CONCAT_FORWARD, &[(0, &Buf::Value(acts[source])), (3, &out)], params, batch * part);
                    offset += part;
                }
            }
            Op::Upsample2d { scale } => {
                let params = Upsample { planes: (batch * in_shape[0]) as u32, height: in_shape[1] as u32, width: in_shape[2] as u32, scale: scale as u32 };
                self.pass(UPSAMPLE2D_FORWARD, &[(0, &x), (3, &out)], params, len);
            }
            Op::ResizeBilinear { scale, align_corners } => {
                let params = Resize::new(batch * in_shape[0], in_shape[1], in_shape[2], scale, align_corners);
                self.pass(RESIZE_BILINEAR_FORWARD, &[(0, &x), (3, &out)], params, len);
            }
            // A slice reads one block of each image: a concatenation's backward for one part.
            Op::SliceChannels { start, .. } => {
                let (total, plane) = slice_geometry(in_shape);
                let part = len / batch;
                let params = Concat { len: len as u32, part: part as u32, total: total as u32, offset: (start * plane) as u32 };
                self.pass(CONCAT_BACKWARD, &[(0, &x), (3, &out)], params, len);
            }
            Op::Pad2d { top, left, bottom, right } => {
                self.pass(PAD2D_FORWARD, &[(0, &x), (3, &out)], pad_params(padding(batch, in_shape, top, left, bottom, right), len), len);
            }
            Op::Flatten | Op::Dropout => unreachable!("shares its input's buffer"),
        }
        y
    }

    fn backward(&mut self, acts: &HashMap<String, usize>, target: &str, wrt: &[String], (kind, index): (u32, u32)) -> GradientPlan {
        let bundle = self.bundle;
        let batch = self.batch;
        let per_image = self.size(target);
        let channels = bundle.shape_of(target).expect("validated").first().copied().unwrap_or(1).max(1);
        let seed = self.value("seed", batch * per_image);
        let values = self.value("objective values", batch);
        let params = ObjectiveSeed { batch: batch as u32, per_image: per_image as u32, plane: (per_image / channels) as u32, kind, index, ..Default::default() };
        self.pass(OBJECTIVE_SEED, &[(0, &Buf::Value(acts[target])), (3, &Buf::Value(seed)), (5, &Buf::Value(values))], params, batch);
        let mut grads: HashMap<String, usize> = HashMap::from([(target.to_string(), seed)]);
        let mut kept = Vec::new();
        for node in bundle.spec().nodes.iter().rev() {
            let Some(d_y) = grads.remove(&node.name) else { continue };
            for (source, d_x) in self.node_backward(node, acts, d_y) {
                let d_x = match grads.remove(&source) {
                    // Read by several nodes: the gradients add up (out of place, so no buffer
                    // that is kept for reading changes afterwards).
                    Some(previous) => {
                        let len = batch * self.size(&source);
                        let sum = self.value("gradient sum", len);
                        self.pass(ADD_FORWARD, &[(0, &Buf::Value(previous)), (1, &Buf::Value(d_x)), (3, &Buf::Value(sum))], Elementwise::new(len), len);
                        sum
                    }
                    None => d_x,
                };
                grads.insert(source, d_x);
            }
            if wrt.contains(&node.name) {
                kept.push((node.name.clone(), d_y));
            }
        }
        let [c, h, w] = bundle.input_shape();
        let len = batch * c * h * w;
        // No pass writes it when no gradient reaches the input: it stays zero.
        let d_image = self.value("input gradient", len);
        if let Some(&d_normalized) = grads.get(INPUT_NAME) {
            let bindings = [(0, &Buf::Value(d_normalized)), (1, &Buf::InvStd), (3, &Buf::Value(d_image))];
            self.pass(CHANNEL_SCALE, &bindings, PerChannel::new(len, c, h * w), len);
        }
        GradientPlan { target: target.to_string(), seed, values, d_image, kept }
    }

    /// Records the gradient at each input of `node` given `d_y` at its output.
    fn node_backward(&mut self, node: &Node, acts: &HashMap<String, usize>, d_y: usize) -> Vec<(String, usize)> {
        let bundle = self.bundle;
        let batch = self.batch;
        let source = node.inputs[0].clone();
        let in_shape = bundle.shape_of(&source).expect("validated");
        let out_shape = bundle.shape_of(&node.name).expect("validated");
        let len = batch * in_shape.iter().product::<usize>();
        let x = Buf::Value(acts[&source]);
        let dy = Buf::Value(d_y);
        let weight = |leaf: &str| Buf::Weight(format!("{}.{leaf}", node.name));
        match node.op {
            Op::Add => return vec![(source, d_y), (node.inputs[1].clone(), d_y)],
            Op::Flatten | Op::Dropout => return vec![(source, d_y)],
            Op::Concat => {
                let total: usize = out_shape.iter().product();
                let mut offset = 0;
                let mut parts = Vec::with_capacity(node.inputs.len());
                for input in &node.inputs {
                    let part = self.size(input);
                    let d_part = self.value("gradient", batch * part);
                    let params = Concat { len: (batch * part) as u32, part: part as u32, total: total as u32, offset: offset as u32 };
                    self.pass(CONCAT_BACKWARD, &[(0, &dy), (3, &Buf::Value(d_part))], params, batch * part);
                    parts.push((input.clone(), d_part));
                    offset += part;
                }
                return parts;
            }
            _ => {}
        }
        let d_x = self.value("gradient", len);
        let dx = Buf::Value(d_x);
        match node.op {
            Op::Conv2d { out_channels, kernel, stride, padding, groups, dilation, .. } => {
                let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                let params = Conv::from_window(&g, out_channels, kernel, stride, padding, groups, dilation);
                let bindings = [(0, &dy), (1, &weight("weight")), (3, &dx)];
                // A stride-1 convolution of d_y (dilated by the stride) with the flipped,
                // transposed weights. At stride > 1 three quarters or more of its products are
                // with the dilation's zeros: tiled only when the gradient has channels enough
                // to fill a tile's rows (not a first layer's 3).
                let reach = (kernel - 1) * dilation;
                let flipped = Conv {
                    in_channels: out_channels as u32,
                    height: g.out_height as u32,
                    width: g.out_width as u32,
                    out_channels: g.in_channels as u32,
                    out_height: g.height as u32,
                    out_width: g.width as u32,
                    padding: reach.saturating_sub(padding) as u32,
                    ..params
                };
                let tiled = groups == 1 && padding <= reach && flipped.tiles() >= MIN_TILES;
                if tiled && (stride == 1 || g.in_channels >= MIN_STRIDED_GRADIENT_CHANNELS) {
                    self.dispatch(CONV2D_BACKWARD_TILED, &bindings, flipped, flipped.tiles());
                } else {
                    self.pass(CONV2D_BACKWARD, &bindings, params, len);
                }
            }
            Op::ConvTranspose2d { in_channels, kernel, stride, padding, groups, dilation, .. } => {
                // The forward of the convolution it transposes, without bias (a value no pass
                // writes: zeros).
                let g = transposed_window(batch, in_shape, out_shape, kernel, stride, padding, dilation);
                let zero_bias = Buf::Value(self.value("zero bias", in_channels));
                let params = Conv::from_window(&g, in_channels, kernel, stride, padding, groups, dilation);
                self.pass(CONV2D_FORWARD, &[(0, &dy), (1, &weight("weight")), (2, &zero_bias), (3, &dx)], params, len);
            }
            Op::MaxPool2d { kernel, stride, padding } => {
                let params = Pool::from_window(&window(batch, in_shape, out_shape, kernel, stride, padding), kernel, stride, padding);
                self.pass(MAX_POOL2D_BACKWARD, &[(0, &dy), (1, &x), (3, &dx)], params, len);
            }
            Op::AvgPool2d { kernel, stride, padding } => {
                let params = Pool::from_window(&window(batch, in_shape, out_shape, kernel, stride, padding), kernel, stride, padding);
                self.pass(AVG_POOL2D_BACKWARD, &[(0, &dy), (3, &dx)], params, len);
            }
            Op::GlobalAvgPool => {
                self.pass(GLOBAL_AVG_POOL_BACKWARD, &[(0, &dy), (3, &dx)], PerChannel::new(len, 0, in_shape[1] * in_shape[2]), len);
            }
            Op::BatchNorm2d { channels, .. } => {
                let params = PerChannel::new(len, channels, in_shape[1] * in_shape[2]);
                self.pass(CHANNEL_SCALE, &[(0, &dy), (1, &weight("scale")), (3, &dx)], params, len);
            }
            Op::Linear { in_features, out_features } => {
                let params = Linear { batch: batch as u32, in_features: in_features as u32, out_features: out_features as u32, _pad: 0 };
                self.pass(LINEAR_BACKWARD, &[(0, &dy), (1, &weight("weight")), (3, &dx)], params, len);
            }
            Op::Relu => self.pass(RELU_BACKWARD, &[(0, &dy), (1, &x), (3, &dx)], PerChannel::new(len, 0, 0), len),
            Op::Clip { min, max } => self.pass(CLIP_BACKWARD, &[(0, &dy), (1, &x), (3, &dx)], Activation::new(len, min, max), len),
            // The derivative is read off the sigmoid's own output.
            Op::Sigmoid => {
                let y = Buf::Value(acts[&node.name]);
                self.pass(SIGMOID_BACKWARD, &[(0, &dy), (1, &y), (3, &dx)], Activation::new(len, 0.0, 0.0), len);
            }
            Op::LeakyRelu { alpha } => self.pass(LEAKY_RELU_BACKWARD, &[(0, &dy), (1, &x), (3, &dx)], Activation::new(len, alpha, 0.0), len),
            Op::HardSigmoid { alpha, beta } => {
                self.pass(HARD_SIGMOID_BACKWARD, &[(0, &dy), (1, &x), (3, &dx)], Activation::new(len, alpha, beta), len);
            }
            Op::HardSwish => self.pass(HARD_SWISH_BACKWARD, &[(0, &dy), (1, &x), (3, &dx)], Activation::new(len, 0.0, 0.0), len),
            Op::Gelu => self.pass(GELU_BACKWARD, &[(0, &dy), (1, &x), (3, &dx)], Activation::new(len, 0.0, 0.0), len),
            Op::ChannelNorm { channels, eps } => {
                let params = Norm::new(len / channels, channels, in_shape[1..].iter().product(), eps);
                self.pass(CHANNEL_NORM_BACKWARD, &[(0, &dy), (1, &x), (2, &weight("weight")), (3, &dx)], params, len / channels);
            }
            Op::InstanceNorm { channels, eps } => {
                let plane: usize = in_shape[1..].iter().product();
                let params = InstanceNorm::new(len / plane, channels, plane, eps);
                self.pass(INSTANCE_NORM_BACKWARD, &[(0, &dy), (1, &x), (2, &weight("weight")), (3, &dx)], params, len / plane);
            }
            Op::Upsample2d { scale } => {
                let params = Upsample { planes: (batch * in_shape[0]) as u32, height: in_shape[1] as u32, width: in_shape[2] as u32, scale: scale as u32 };
                self.pass(UPSAMPLE2D_BACKWARD, &[(0, &dy), (3, &dx)], params, len);
            }
            Op::ResizeBilinear { scale, align_corners } => {
                let params = Resize::new(batch * in_shape[0], in_shape[1], in_shape[2], scale, align_corners);
                self.pass(RESIZE_BILINEAR_BACKWARD, &[(0, &dy), (3, &dx)], params, len);
            }
            Op::Pad2d { top, left, bottom, right } => {
                self.pass(PAD2D_BACKWARD, &[(0, &dy), (3, &dx)], pad_params(padding(batch, in_shape, top, left, bottom, right), len), len);
            }
            // Back into its block of each image: a concatenation's forward for one part; the rest
            // of d_x is never written, so it stays zero.
            Op::SliceChannels { start, .. } => {
                let (total, plane) = slice_geometry(in_shape);
                let part: usize = out_shape.iter().product();
                let params = Concat { len: (batch * part) as u32, part: part as u32, total: total as u32, offset: (start * plane) as u32 };
                self.pass(CONCAT_FORWARD, &[(0, &dy), (3, &dx)], params, batch * part);
            }
            Op::Mul => {
                let other = node.inputs[1].clone();
                let b = Buf::Value(acts[&other]);
                let b_len = batch * self.size(&other);
                let plane = (len / b_len) as u32;
                self.pass(MUL_BACKWARD_A, &[(1, &b), (2, &dy), (3, &dx)], Broadcast { len: len as u32, plane, ..Default::default() }, len);
                let d_b = self.value("gradient", b_len);
                let params = Broadcast { len: b_len as u32, plane, ..Default::default() };
                self.pass(MUL_BACKWARD_B, &[(0, &x), (2, &dy), (3, &Buf::Value(d_b))], params, b_len);
                return vec![(source, d_x), (other, d_b)];
            }
            Op::Add | Op::Flatten | Op::Dropout | Op::Concat => unreachable!("handled above"),
        }
        vec![(source, d_x)]
    }
}

/// The padding kernels' block: the plane geometry and `len`, the count of the kernel's outputs
/// (padded values forward, input values backward).
fn pad_params(g: crate::engine::cpu::layers::Padding, len: usize) -> Pad {
    let v = [g.planes, g.height, g.width, g.top, g.left, g.out_height(), g.out_width(), len].map(|v| v as u32);
    bytemuck::cast(v)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::testing::{concat_spec, gate_spec, random_bundle, reference_cases, residual_spec, Rng};

    fn models() -> Vec<(String, Bundle)> {
        let mut rng = Rng::new(crate::testing::fresh_seed());
        let mut specs: Vec<(String, crate::model::ModelSpec)> = reference_cases().into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        specs.extend([("gate".to_string(), gate_spec()), ("concat".into(), concat_spec()), ("residual".into(), residual_spec())]);
        specs.into_iter().map(|(name, spec)| (name, random_bundle(&mut rng, spec))).collect()
    }

    /// What any plan must satisfy to run: each pass reads only values that the host wrote or an
    /// earlier pass wrote (or that nothing ever writes: zeros by construction), binds only
    /// tensors the engine uploads, and carries its kernel's parameter block. Passes write at
    /// binding 3 (and the objective's values at 5).
    fn check(name: &str, bundle: &Bundle, plan: &Plan) {
        let sizes: HashMap<&str, usize> = param_layouts().into_iter().map(|l| (l.entry, l.size)).collect();
        let mut written: HashSet<usize> = [plan.image].into_iter().chain(plan.masks.iter().map(|m| m.1)).collect();
        let ever_written: HashSet<usize> = plan.stages.iter().flatten().flat_map(|p| p.bindings.iter()).filter(|b| matches!(b.0, 3 | 5)).filter_map(|b| match b.1 {
            Buf::Value(v) => Some(v),
            _ => None,
        }).collect();
        for pass in plan.stages.iter().flatten() {
            assert_eq!(pass.params.len(), sizes[pass.entry], "{name}: {} parameter block", pass.entry);
            assert!(pass.workgroups > 0, "{name}: {} runs nothing", pass.entry);
            for (slot, buf) in &pass.bindings {
                match buf {
                    Buf::Value(v) if matches!(*slot, 3 | 5) => {
                        // A tile has at least one output; a flat workgroup at least one of its 64.
                        let per = if pass.entry.ends_with("_tiled") { 1 } else { WORKGROUP };
                        assert!((pass.workgroups - 1) * per < plan.values[*v].len, "{name}: {} has workgroups with nothing to write in `{}`", pass.entry, plan.values[*v].label);
                    }
                    Buf::Value(v) => assert!(written.contains(v) || !ever_written.contains(v), "{name}: {} reads `{}` before it is written", pass.entry, plan.values[*v].label),
                    Buf::Weight(w) => {
                        let (node, leaf) = w.rsplit_once('.').expect("node.leaf");
                        let folded = matches!(leaf, "scale" | "shift") && bundle.spec().nodes.iter().any(|n| n.name == node && matches!(n.op, Op::BatchNorm2d { .. }));
                        assert!(folded || bundle.weights().contains_key(w), "{name}: {} binds `{w}`, which the model does not have", pass.entry);
                    }
                    Buf::Stats | Buf::InvStd => {}
                }
            }
            for (slot, buf) in &pass.bindings {
                if let (3 | 5, Buf::Value(v)) = (slot, buf) {
                    written.insert(*v);
                }
            }
        }
    }

    #[test]
    fn plans_read_only_what_was_written_and_bind_what_exists() {
        let mut entries = HashSet::new();
        for (name, bundle) in models() {
            let spec = bundle.spec();
            for batch in [1, 3] {
                let masked: Vec<String> = spec.nodes.iter().step_by(2).map(|n| n.name.clone()).collect();
                let forward = lower(&bundle, &Request::Forward { batch, masked: masked.clone() });
                check(&name, &bundle, &forward);
                assert_eq!(forward.stages.len(), 1);
                assert_eq!(forward.masks.iter().map(|m| m.0.clone()).collect::<Vec<_>>(), masked, "{name}: a mask per masked node, in order");
                assert!(spec.nodes.iter().all(|n| forward.acts.contains_key(&n.name)), "{name}: every node's output is planned");
                let [c, h, w] = bundle.input_shape();
                assert_eq!(forward.values[forward.image].len, batch * c * h * w);
                let out = &forward.values[forward.acts[&spec.output]];
                assert_eq!(out.len, batch * spec.classes.len(), "{name}: logits");

                let wrt: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
                let gradient = lower(&bundle, &Request::Gradient { batch, target: spec.output.clone(), wrt: wrt.clone(), objective: (1, 0) });
                check(&name, &bundle, &gradient);
                assert_eq!(gradient.stages.len(), 2);
                let g = gradient.gradient.as_ref().unwrap();
                assert_eq!(gradient.values[g.d_image].len, batch * c * h * w);
                assert_eq!(gradient.values[g.seed].len, batch * spec.classes.len());
                // The backward stage starts from the objective, computed on the GPU.
                let first = &gradient.stages[1][0];
                assert_eq!(first.entry, "objective_seed", "{name}");
                assert_eq!(first.bindings, vec![(0, Buf::Value(gradient.acts[&spec.output])), (3, Buf::Value(g.seed)), (5, Buf::Value(g.values))], "{name}");
                assert_eq!(gradient.values[g.values].len, batch);
                // Every node feeds the output in these models: each gets a gradient.
                let kept: HashSet<&str> = g.kept.iter().map(|k| k.0.as_str()).collect();
                assert_eq!(kept.len(), wrt.len(), "{name}: {kept:?}");
                // The input gradient is the last pass and scales by 1/std.
                let last = gradient.stages[1].last().unwrap();
                assert_eq!((last.entry, &last.bindings[1].1), ("channel_scale", &Buf::InvStd), "{name}");
                entries.extend(forward.stages[0].iter().chain(&gradient.stages[1]).map(|p| (p.entry, batch)));
            }
        }
        // The reference cases (which the GPU tests run at batches 1 and 5) reach both products.
        for entry in ["conv2d_tiled", "conv2d_forward", "linear_forward", "conv2d_backward_tiled", "conv2d_backward"] {
            assert!(entries.iter().any(|e| e.0 == entry), "no reference case lowers to {entry}");
        }
    }

    #[test]
    fn a_plan_is_a_function_of_its_request() {
        let (_, bundle) = models().remove(0);
        let request = Request::Forward { batch: 2, masked: vec![] };
        let (a, b) = (lower(&bundle, &request), lower(&bundle, &request));
        let passes = |p: &Plan| p.stages.iter().flatten().map(|p| (p.entry, p.bindings.clone(), p.params.clone(), p.workgroups)).collect::<Vec<_>>();
        assert_eq!(passes(&a), passes(&b));
        let bigger = lower(&bundle, &Request::Forward { batch: 4, masked: vec![] });
        assert_eq!(bigger.values[bigger.image].len, 2 * a.values[a.image].len);
    }
}
