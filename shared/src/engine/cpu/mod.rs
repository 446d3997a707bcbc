//! The CPU reference engine: exact, portable (native and wasm32), single-threaded.
//! Forward in [`layers`], backward in [`backward`], both plain loops that state the math, except
//! that convolutions and dense layers over a batch are matrix products in [`gemm`].

pub mod backward;
pub mod channel_norm;
pub mod gemm;
pub mod instance_norm;
pub mod layers;
pub mod resize;
pub mod winograd;
mod packed;
mod scratch;

use std::collections::HashMap;
use std::sync::Arc;

use self::layers::Window;
use self::packed::PackedWeights;
use crate::engine::objective::{Ablation, Gradient, Objective};
use crate::model::{Bundle, Node, Op, INPUT_NAME};
use crate::{Error, Result, Tensor};

/// Runs a [`Bundle`] with the plain-loop layers of [`layers`] and [`backward`].
#[derive(Clone, Debug)]
pub struct CpuEngine {
    bundle: Arc<Bundle>,
    /// Convolution weights packed for the matrix product, shared by the engine's clones.
    packed: Arc<PackedWeights>,
}

impl CpuEngine {
    pub fn new(bundle: Arc<Bundle>) -> Self {
        let packed = Arc::new(PackedWeights::new(&bundle));
        Self { bundle, packed }
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Class logits `[N, classes]` for a batch of images `[N, C, H, W]` in [0, 1].
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_ablated(input, &Ablation::default())
    }

    /// Logits with the channels of `ablation` zeroed after their nodes (for the exact
    /// prediction difference of a neuron).
    pub fn forward_ablated(&self, input: &Tensor, ablation: &Ablation) -> Result<Tensor> {
        let mut acts = self.forward_all_ablated(input, ablation)?;
        let logits = acts.remove(&self.bundle.spec().output).expect("validated bundles have their output node");
        recycle(acts);
        Ok(logits)
    }

    /// The output of every node (and `"input"`, normalised), each with its batch axis.
    pub fn forward_all(&self, input: &Tensor) -> Result<HashMap<String, Tensor>> {
        self.forward_all_ablated(input, &Ablation::default())
    }

    /// [`CpuEngine::forward_all`] with the channels of `ablation` zeroed.
    pub fn forward_all_ablated(&self, input: &Tensor, ablation: &Ablation) -> Result<HashMap<String, Tensor>> {
        let bundle = &*self.bundle;
        let batch = check_input(bundle, input)?;
        ablation.validate(bundle)?;
        let spec = bundle.spec();
        let [c, h, w] = bundle.input_shape();
        let normalized = layers::normalize_forward(input.data(), batch, &spec.input.mean, &spec.input.std, h * w);
        let mut acts: HashMap<String, Tensor> = HashMap::new();
        acts.insert(INPUT_NAME.into(), Tensor::new(vec![batch, c, h, w], normalized)?);
        for node in &spec.nodes {
            let mut y = self.node_forward(node, batch, &|n| &acts[n]);
            let out_shape = bundle.shape_of(&node.name).expect("validated");
            if let Some(channels) = ablation.channels.get(&node.name) {
                zero_channels(&mut y, out_shape, channels);
            }
            let mut shape = vec![batch];
            shape.extend_from_slice(out_shape);
            acts.insert(node.name.clone(), Tensor::new(shape, y)?);
        }
        Ok(acts)
    }

    /// [`CpuEngine::forward_ablated`] from `acts`, a [`CpuEngine::forward_all`] of the same
    /// images: only the nodes downstream of an ablated node are recomputed, the others are read
    /// from `acts`. Tracing zeroes each channel of one late layer in turn, and everything before
    /// that layer stays the same, so each ablation costs the network's tail only.
    pub fn forward_ablated_from(&self, acts: &HashMap<String, Tensor>, ablation: &Ablation) -> Result<Tensor> {
        let bundle = &*self.bundle;
        ablation.validate(bundle)?;
        let spec = bundle.spec();
        let missing = std::iter::once(INPUT_NAME).chain(spec.nodes.iter().map(|n| n.name.as_str())).find(|n| !acts.contains_key(*n));
        if let Some(name) = missing {
            return Err(Error::Graph(format!("forward_ablated_from needs every node's output (a forward_all of the same images); `{name}` is missing")));
        }
        let batch = acts[INPUT_NAME].shape()[0];
        let mut changed: HashMap<String, Tensor> = HashMap::new();
        for node in &spec.nodes {
            let upstream_changed = node.inputs.iter().any(|i| changed.contains_key(i));
            let zeroed = ablation.channels.get(&node.name).filter(|c| !c.is_empty());
            if !upstream_changed && zeroed.is_none() {
                continue;
            }
            let mut y = if upstream_changed {
                self.node_forward(node, batch, &|n| changed.get(n).unwrap_or_else(|| &acts[n]))
            } else {
                acts[&node.name].data().to_vec()
            };
            if let Some(channels) = zeroed {
                zero_channels(&mut y, bundle.shape_of(&node.name).expect("validated"), channels);
            }
            changed.insert(node.name.clone(), Tensor::new(acts[&node.name].shape().to_vec(), y)?);
        }
        Ok(changed.remove(&spec.output).unwrap_or_else(|| acts[&spec.output].clone()))
    }

    fn node_shape(&self, node: &str) -> Result<&[usize]> {
        self.bundle
            .shape_of(node)
            .filter(|_| node != INPUT_NAME)
            .ok_or_else(|| Error::Graph(format!("the model has no node `{node}`")))
    }

    /// One node's output from its inputs, looked up by name in `value`.
    fn node_forward<'a>(&self, node: &Node, batch: usize, value: &dyn Fn(&str) -> &'a Tensor) -> Vec<f32> {
        let bundle = &*self.bundle;
        let x = value(&node.inputs[0]).data();
        let in_shape = bundle.shape_of(&node.inputs[0]).expect("validated");
        let out_shape = bundle.shape_of(&node.name).expect("validated");
        let tensor = |leaf: &str| bundle.weight(&format!("{}.{leaf}", node.name)).data();
        match node.op {
            Op::Conv2d { out_channels, kernel, stride, padding, groups, dilation, .. } => {
                let g = Window { dilation, ..window(batch, in_shape, out_shape, kernel, stride, padding) };
                if winograd::applies(&g, groups, out_channels) {
                    let u = self.packed.winograd(&node.name, tensor("weight"), out_channels, g.in_channels);
                    winograd::forward(x, u, tensor("bias"), g, out_channels)
                } else {
                    let taps = g.in_channels / groups * kernel * kernel;
                    let weights = self.packed.forward(&node.name, tensor("weight"), out_channels, taps, groups);
                    layers::conv2d_forward_packed(x, weights, tensor("bias"), g, out_channels, groups)
                }
            }
            Op::ConvTranspose2d { in_channels, kernel, stride, padding, groups, dilation, .. } => {
                layers::conv_transpose2d_forward(x, tensor("weight"), tensor("bias"), transposed_window(batch, in_shape, out_shape, kernel, stride, padding, dilation), in_channels, groups)
            }
            Op::MaxPool2d { kernel, stride, padding } => {
                layers::max_pool2d_forward(x, window(batch, in_shape, out_shape, kernel, stride, padding))
            }
            Op::AvgPool2d { kernel, stride, padding } => {
                layers::avg_pool2d_forward(x, window(batch, in_shape, out_shape, kernel, stride, padding))
            }
            Op::GlobalAvgPool => layers::global_avg_pool_forward(x, batch * in_shape[0], in_shape[1] * in_shape[2]),
            Op::BatchNorm2d { eps, .. } => {
                let (scale, shift) =
                    layers::batch_norm_fold(tensor("weight"), tensor("bias"), tensor("running_mean"), tensor("running_var"), eps);
                layers::batch_norm_forward(x, &scale, &shift, batch, in_shape[1] * in_shape[2])
            }
            Op::Linear { in_features, out_features } => {
                layers::linear_forward(x, tensor("weight"), tensor("bias"), batch, in_features, out_features)
            }
            Op::Relu => layers::relu_forward(x),
            Op::Clip { min, max } => layers::clip_forward(x, min, max),
            Op::Sigmoid => layers::sigmoid_forward(x),
            Op::LeakyRelu { alpha } => layers::leaky_relu_forward(x, alpha),
            Op::HardSigmoid { alpha, beta } => layers::hard_sigmoid_forward(x, alpha, beta),
            Op::HardSwish => layers::hard_swish_forward(x),
            Op::Gelu => layers::gelu_forward(x),
            Op::ChannelNorm { eps, .. } => channel_norm::channel_norm_forward(x, tensor("weight"), tensor("bias"), batch, in_shape[1..].iter().product(), eps),
            Op::InstanceNorm { eps, .. } => instance_norm::instance_norm_forward(x, tensor("weight"), tensor("bias"), in_shape[1..].iter().product(), eps),
            Op::Mul => layers::mul_forward(x, value(&node.inputs[1]).data(), self.mul_plane(node)),
            Op::Add => layers::add_forward(x, value(&node.inputs[1]).data()),
            Op::Concat => {
                let parts: Vec<&[f32]> = node.inputs.iter().map(|i| value(i).data()).collect();
                layers::concat_forward(&parts, &self.per_image(&node.inputs), batch)
            }
            Op::Upsample2d { scale } => layers::upsample2d_forward(x, batch * in_shape[0], in_shape[1], in_shape[2], scale),
            Op::ResizeBilinear { scale, align_corners } => resize::resize_bilinear_forward(x, batch * in_shape[0], in_shape[1], in_shape[2], scale, align_corners),
            Op::Pad2d { top, left, bottom, right } => layers::pad2d_forward(x, padding(batch, in_shape, top, left, bottom, right)),
            Op::SliceChannels { start, end } => {
                let (total, plane) = slice_geometry(in_shape);
                layers::slice_forward(x, total, start * plane, (end - start) * plane)
            }
            Op::Flatten | Op::Dropout => scratch::collect(x.len(), x.iter().copied()),
        }
    }

    /// The gradient of `objective` with respect to the input image and to the activations of
    /// the nodes named in `wrt`, by reverse-mode differentiation through [`backward`].
    pub fn gradient(&self, input: &Tensor, objective: &Objective, wrt: &[&str]) -> Result<Gradient> {
        let bundle = &*self.bundle;
        let spec = bundle.spec();
        let target = objective.node().unwrap_or(&spec.output).to_string();
        self.node_shape(&target)?;
        for name in wrt {
            self.node_shape(name)?;
        }
        let acts = self.forward_all(input)?;
        let batch = input.shape()[0];
        let (values, seed) = objective.value_and_seed(&acts[&target])?;

        let mut grads: HashMap<String, Vec<f32>> = HashMap::from([(target, seed)]);
        let mut activations = HashMap::new();
        for node in spec.nodes.iter().rev() {
            let Some(d_y) = grads.remove(&node.name) else { continue };
            if wrt.contains(&node.name.as_str()) {
                activations.insert(node.name.clone(), Tensor::new(acts[&node.name].shape().to_vec(), d_y.clone())?);
            }
            for (source, d_x) in self.node_backward(node, batch, &acts, &d_y) {
                match grads.get_mut(source) {
                    Some(acc) => {
                        acc.iter_mut().zip(&d_x).for_each(|(a, d)| *a += d);
                        scratch::recycle(d_x);
                    }
                    None => {
                        grads.insert(source.to_string(), d_x);
                    }
                }
            }
            scratch::recycle(d_y);
        }
        // Nodes after the objective's node get no gradient: zeros.
        for name in wrt {
            if !activations.contains_key(*name) {
                activations.insert(name.to_string(), Tensor::zeros(acts[*name].shape().to_vec()));
            }
        }
        let [c, h, w] = bundle.input_shape();
        let d_input = grads.remove(INPUT_NAME).unwrap_or_else(|| vec![0.0; input.len()]);
        let d_image = backward::normalize_backward(&d_input, batch, &spec.input.std, h * w);
        scratch::recycle(d_input);
        grads.into_values().for_each(scratch::recycle);
        recycle(acts);
        Ok(Gradient { values, input: Tensor::new(vec![batch, c, h, w], d_image)?, activations })
    }

    /// The gradient at each input of `node`, given the gradient `d_y` at its output.
    fn node_backward<'n>(&self, node: &'n Node, batch: usize, acts: &HashMap<String, Tensor>, d_y: &[f32]) -> Vec<(&'n str, Vec<f32>)> {
        let bundle = &*self.bundle;
        let source = node.inputs[0].as_str();
        let x = acts[source].data();
        let in_shape = bundle.shape_of(source).expect("validated");
        let out_shape = bundle.shape_of(&node.name).expect("validated");
        let tensor = |leaf: &str| bundle.weight(&format!("{}.{leaf}", node.name)).data();
        let d_x = match node.op {
            Op::Conv2d { out_channels, kernel, stride, padding, groups, dilation, .. } => {
                let g = Window { dilation, ..window(batch, in_shape, out_shape, kernel, stride, padding) };
                if winograd::backward_applies(&g, groups, out_channels) {
                    let u_t = self.packed.winograd_backward(&node.name, tensor("weight"), out_channels, g.in_channels);
                    winograd::backward(d_y, u_t, g, out_channels)
                } else {
                    let taps = g.in_channels / groups * kernel * kernel;
                    let weights_t = self.packed.backward(&node.name, tensor("weight"), out_channels, taps, groups);
                    backward::conv2d_backward_packed(d_y, weights_t, g, out_channels, groups)
                }
            }
            Op::ConvTranspose2d { in_channels, kernel, stride, padding, groups, dilation, .. } => {
                backward::conv_transpose2d_backward(d_y, tensor("weight"), transposed_window(batch, in_shape, out_shape, kernel, stride, padding, dilation), in_channels, groups)
            }
            Op::MaxPool2d { kernel, stride, padding } => {
                backward::max_pool2d_backward(x, d_y, window(batch, in_shape, out_shape, kernel, stride, padding))
            }
            Op::AvgPool2d { kernel, stride, padding } => {
                backward::avg_pool2d_backward(d_y, window(batch, in_shape, out_shape, kernel, stride, padding))
            }
            Op::GlobalAvgPool => backward::global_avg_pool_backward(d_y, batch * in_shape[0], in_shape[1] * in_shape[2]),
            Op::BatchNorm2d { eps, .. } => {
                let (scale, _) =
                    layers::batch_norm_fold(tensor("weight"), tensor("bias"), tensor("running_mean"), tensor("running_var"), eps);
                backward::batch_norm_backward(d_y, &scale, batch, in_shape[1] * in_shape[2])
            }
            Op::Linear { in_features, out_features } => backward::linear_backward(d_y, tensor("weight"), batch, in_features, out_features),
            Op::Relu => backward::relu_backward(x, d_y),
            Op::Clip { min, max } => backward::clip_backward(x, d_y, min, max),
            Op::Sigmoid => backward::sigmoid_backward(acts[&node.name].data(), d_y),
            Op::LeakyRelu { alpha } => backward::leaky_relu_backward(x, d_y, alpha),
            Op::Concat => {
                let parts = backward::concat_backward(d_y, &self.per_image(&node.inputs), batch);
                return node.inputs.iter().map(String::as_str).zip(parts).collect();
            }
            Op::HardSigmoid { alpha, beta } => backward::hard_sigmoid_backward(x, d_y, alpha, beta),
            Op::HardSwish => backward::hard_swish_backward(x, d_y),
            Op::Gelu => backward::gelu_backward(x, d_y),
            Op::ChannelNorm { eps, .. } => channel_norm::channel_norm_backward(x, d_y, tensor("weight"), batch, in_shape[1..].iter().product(), eps),
            Op::InstanceNorm { eps, .. } => instance_norm::instance_norm_backward(x, d_y, tensor("weight"), in_shape[1..].iter().product(), eps),
            Op::Mul => {
                let (d_a, d_b) = backward::mul_backward(x, acts[&node.inputs[1]].data(), d_y, self.mul_plane(node));
                return vec![(source, d_a), (node.inputs[1].as_str(), d_b)];
            }
            Op::Add => {
                let copy = || scratch::collect(d_y.len(), d_y.iter().copied());
                return vec![(source, copy()), (node.inputs[1].as_str(), copy())];
            }
            Op::Upsample2d { scale } => backward::upsample2d_backward(d_y, batch * in_shape[0], in_shape[1], in_shape[2], scale),
            Op::ResizeBilinear { scale, align_corners } => resize::resize_bilinear_backward(d_y, batch * in_shape[0], in_shape[1], in_shape[2], scale, align_corners),
            Op::Pad2d { top, left, bottom, right } => backward::pad2d_backward(d_y, padding(batch, in_shape, top, left, bottom, right)),
            Op::SliceChannels { start, end } => {
                let (total, plane) = slice_geometry(in_shape);
                backward::slice_backward(d_y, total, start * plane, (end - start) * plane)
            }
            Op::Flatten | Op::Dropout => scratch::collect(d_y.len(), d_y.iter().copied()),
        };
        vec![(source, d_x)]
    }
}

impl CpuEngine {
    /// How many values of a [`Op::Mul`]'s first input share one value of its second: 1 for
    /// equal shapes, `H*W` for a map times a per-channel vector.
    fn mul_plane(&self, node: &Node) -> usize {
        let [a, b] = self.per_image(&node.inputs)[..] else { unreachable!("validated: mul has two inputs") };
        a / b
    }

    /// The number of values per image of each node in `names`.
    fn per_image(&self, names: &[String]) -> Vec<usize> {
        names.iter().map(|n| self.bundle.shape_of(n).expect("validated").iter().product()).collect()
    }
}

/// The [`Window`] of the convolution that a `conv_transpose2d` node transposes: the node's
/// output is that convolution's input and the node's input its output.
pub(crate) fn transposed_window(batch: usize, input: &[usize], output: &[usize], kernel: usize, stride: usize, padding: usize, dilation: usize) -> Window {
    Window { dilation, ..window(batch, output, input, kernel, stride, padding) }
}

/// The [`layers::Padding`] of a `pad2d` node reading `[C, H, W]` maps.
pub(crate) fn padding(batch: usize, input: &[usize], top: usize, left: usize, bottom: usize, right: usize) -> layers::Padding {
    layers::Padding { planes: batch * input[0], height: input[1], width: input[2], top, left, bottom, right }
}

pub(crate) fn window(batch: usize, input: &[usize], output: &[usize], kernel: usize, stride: usize, padding: usize) -> Window {
    Window {
        batch,
        in_channels: input[0],
        height: input[1],
        width: input[2],
        kernel,
        stride,
        padding,
        dilation: 1,
        out_height: output[1],
        out_width: output[2],
    }
}

/// The batch size of `input`, after checking it is `[N, C, H, W]` as the model expects.
pub(crate) fn check_input(bundle: &Bundle, input: &Tensor) -> Result<usize> {
    let [c, h, w] = bundle.input_shape();
    match *input.shape() {
        [n, ic, ih, iw] if n > 0 && [ic, ih, iw] == [c, h, w] => Ok(n),
        _ => Err(Error::InputShape { expected: format!("[N, {c}, {h}, {w}] with N > 0"), found: format!("{:?}", input.shape()) }),
    }
}

/// Values per image and per channel of a node of per-image shape `shape` (`[C, ...]`).
pub(crate) fn slice_geometry(shape: &[usize]) -> (usize, usize) {
    (shape.iter().product(), shape[1..].iter().product())
}

/// Gives the buffers of `acts`, a call's activations it no longer needs, back for the next call.
fn recycle(acts: HashMap<String, Tensor>) {
    acts.into_values().for_each(|t| scratch::recycle(t.into_data()));
}

/// Zeroes `channels` of every image of `y`, a node's output whose per-image shape is `shape`
/// (`[C, ...]`).
fn zero_channels(y: &mut [f32], shape: &[usize], channels: &[usize]) {
    let per_image: usize = shape.iter().product();
    let plane = per_image / shape[0];
    for image in y.chunks_mut(per_image) {
        for &ch in channels {
            image[ch * plane..][..plane].fill(0.0);
        }
    }
}
