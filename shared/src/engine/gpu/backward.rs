//! Gradients on the GPU: the forward pass keeps every activation on the device, the objective's
//! seed is computed on the host from the (small) activation it reads, and the backward kernels
//! run in reverse graph order. The same math as `engine::cpu::backward`, gathered instead of
//! scattered so that no kernel needs atomics.

use std::collections::HashMap;

use super::{storage_buffer, GpuEngine};
use crate::engine::cpu::{check_input, window};
use crate::engine::objective::{Gradient, Objective};
use crate::model::{Node, Op, INPUT_NAME};
use crate::{Error, Result, Tensor};

impl GpuEngine {
    /// The gradient of `objective` with respect to the input image and to the activations of the
    /// nodes in `wrt`; equal to [`crate::engine::cpu::CpuEngine::gradient`] up to rounding.
    pub async fn gradient(&self, input: &Tensor, objective: &Objective, wrt: &[&str]) -> Result<Gradient> {
        self.alive()?;
        let bundle = &*self.bundle;
        let spec = bundle.spec();
        let batch = check_input(bundle, input)?;
        let target = objective.node().unwrap_or(&spec.output).to_string();
        for name in wrt.iter().copied().chain([target.as_str()]) {
            if name == INPUT_NAME || bundle.shape_of(name).is_none() {
                return Err(Error::Graph(format!("the model has no node `{name}`")));
            }
        }
        let with_batch = |name: &str| {
            let mut shape = vec![batch];
            shape.extend_from_slice(bundle.shape_of(name).expect("checked"));
            shape
        };
        let scopes = self.error_scopes();

        // Forward, keeping the activations; read back only what the objective reads.
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let acts = self.encode_forward(&mut encoder, input, batch, &Default::default());
        let target_shape = with_batch(&target);
        let target_len = target_shape.iter().product();
        let target_act = self.read_back(encoder, &[(&acts[&target], target_len)]).await?.remove(0);
        let (values, seed) = objective.value_and_seed(&Tensor::new(target_shape, target_act)?)?;

        // Backward.
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let mut grads: HashMap<String, wgpu::Buffer> = HashMap::from([(target, storage_buffer(&self.device, "seed", &seed))]);
        let mut kept: Vec<(String, wgpu::Buffer)> = Vec::new();
        for node in spec.nodes.iter().rev() {
            let Some(d_y) = grads.remove(&node.name) else { continue };
            for (source, d_x) in self.encode_node_backward(&mut encoder, node, batch, &acts, &d_y) {
                let d_x = match grads.remove(source) {
                    // Read by several nodes: the gradients add up (out of place, so no buffer
                    // that is kept for reading changes afterwards).
                    Some(previous) => {
                        let len = batch * bundle.shape_of(source).expect("validated").iter().product::<usize>();
                        let sum = self.output_buffer("gradient sum", len);
                        self.dispatch(&mut encoder, "add_forward", &[(0, &previous), (1, &d_x), (3, &sum)], &[len as u32, 0, 0, 0], len);
                        sum
                    }
                    None => d_x,
                };
                grads.insert(source.to_string(), d_x);
            }
            if wrt.contains(&node.name.as_str()) {
                kept.push((node.name.clone(), d_y));
            }
        }
        let [c, h, w] = bundle.input_shape();
        let len = input.len();
        let d_image = self.output_buffer("input gradient", len);
        match grads.get(INPUT_NAME) {
            Some(d_normalized) => {
                let inv_std: Vec<f32> = spec.input.std.iter().map(|s| 1.0 / s).collect();
                let inv_std = storage_buffer(&self.device, "1/std", &inv_std);
                let params = [len as u32, c as u32, (h * w) as u32, 0];
                self.dispatch(&mut encoder, "channel_scale", &[(0, d_normalized), (1, &inv_std), (3, &d_image)], &params, len);
            }
            None => encoder.clear_buffer(&d_image, 0, None),
        }
        let mut reads: Vec<(&wgpu::Buffer, usize)> = vec![(&d_image, len)];
        reads.extend(kept.iter().map(|(name, b)| (b, with_batch(name).iter().product())));
        let mut out = self.read_back(encoder, &reads).await?.into_iter();
        scopes.check(batch).await?;

        let input_grad = Tensor::new(vec![batch, c, h, w], out.next().expect("one per read"))?;
        let mut activations = HashMap::new();
        for ((name, _), data) in kept.iter().zip(out) {
            activations.insert(name.clone(), Tensor::new(with_batch(name), data)?);
        }
        // Nodes after the objective's node get no gradient.
        for name in wrt {
            if !activations.contains_key(*name) {
                activations.insert(name.to_string(), Tensor::zeros(with_batch(name)));
            }
        }
        Ok(Gradient { values, input: input_grad, activations })
    }

    /// Records the gradient at each input of `node` given `d_y` at its output.
    fn encode_node_backward<'n>(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        node: &'n Node,
        batch: usize,
        acts: &HashMap<String, wgpu::Buffer>,
        d_y: &wgpu::Buffer,
    ) -> Vec<(&'n str, wgpu::Buffer)> {
        let bundle = &*self.bundle;
        let source = node.inputs[0].as_str();
        let in_shape = bundle.shape_of(source).expect("validated");
        let out_shape = bundle.shape_of(&node.name).expect("validated");
        let len = batch * in_shape.iter().product::<usize>();
        let x = &acts[source];
        let tensor = |leaf: &str| &self.weights[&format!("{}.{leaf}", node.name)];
        let d_x = self.output_buffer("gradient", len);
        match node.op {
            Op::Conv2d { out_channels, kernel, stride, padding, groups, dilation, .. } => {
                let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                let params = [g.batch, g.in_channels, g.height, g.width, out_channels, g.out_height, g.out_width, kernel, stride, padding, groups, dilation];
                self.dispatch(encoder, "conv2d_backward", &[(0, d_y), (1, tensor("weight")), (3, &d_x)], &params.map(|v| v as u32), len);
            }
            Op::ConvTranspose2d { in_channels, kernel, stride, padding, groups, dilation, .. } => {
                // The forward of the convolution it transposes, without bias (a zero buffer).
                let g = crate::engine::cpu::transposed_window(batch, in_shape, out_shape, kernel, stride, padding, dilation);
                let zero_bias = self.output_buffer("zero bias", in_channels);
                let params = [g.batch, g.in_channels, g.height, g.width, in_channels, g.out_height, g.out_width, kernel, stride, padding, groups, dilation];
                self.dispatch(encoder, "conv2d_forward", &[(0, d_y), (1, tensor("weight")), (2, &zero_bias), (3, &d_x)], &params.map(|v| v as u32), len);
            }
            Op::MaxPool2d { kernel, stride, padding } | Op::AvgPool2d { kernel, stride, padding } => {
                let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                let params = [g.batch * g.in_channels, g.height, g.width, g.out_height, g.out_width, kernel, stride, padding];
                let (entry, buffers): (&str, Vec<(u32, &wgpu::Buffer)>) = match node.op {
                    Op::MaxPool2d { .. } => ("max_pool2d_backward", vec![(0, d_y), (1, x), (3, &d_x)]),
                    _ => ("avg_pool2d_backward", vec![(0, d_y), (3, &d_x)]),
                };
                self.dispatch(encoder, entry, &buffers, &params.map(|v| v as u32), len);
            }
            Op::GlobalAvgPool => {
                let params = [len as u32, 0, (in_shape[1] * in_shape[2]) as u32, 0];
                self.dispatch(encoder, "global_avg_pool_backward", &[(0, d_y), (3, &d_x)], &params, len);
            }
            Op::BatchNorm2d { channels, .. } => {
                let params = [len as u32, channels as u32, (in_shape[1] * in_shape[2]) as u32, 0];
                self.dispatch(encoder, "channel_scale", &[(0, d_y), (1, tensor("scale")), (3, &d_x)], &params, len);
            }
            Op::Linear { in_features, out_features } => {
                let params = [batch as u32, in_features as u32, out_features as u32, 0];
                self.dispatch(encoder, "linear_backward", &[(0, d_y), (1, tensor("weight")), (3, &d_x)], &params, len);
            }
            Op::Relu => {
                self.dispatch(encoder, "relu_backward", &[(0, d_y), (1, x), (3, &d_x)], &[len as u32, 0, 0, 0], len);
            }
            Op::Clip { min, max } => {
                self.dispatch(encoder, "clip_backward", &[(0, d_y), (1, x), (3, &d_x)], &[len as u32, min.to_bits(), max.to_bits(), 0], len);
            }
            Op::Sigmoid => {
                // The derivative is read off the sigmoid's own output.
                self.dispatch(encoder, "sigmoid_backward", &[(0, d_y), (1, &acts[&node.name]), (3, &d_x)], &[len as u32, 0, 0, 0], len);
            }
            Op::LeakyRelu { alpha } => {
                self.dispatch(encoder, "leaky_relu_backward", &[(0, d_y), (1, x), (3, &d_x)], &[len as u32, alpha.to_bits(), 0, 0], len);
            }
            Op::Concat => {
                let total: usize = out_shape.iter().product();
                let mut offset = 0;
                let mut parts = Vec::with_capacity(node.inputs.len());
                for source in &node.inputs {
                    let part: usize = bundle.shape_of(source).expect("validated").iter().product();
                    let d_part = self.output_buffer("gradient", batch * part);
                    let params = [(batch * part) as u32, part as u32, total as u32, offset as u32];
                    self.dispatch(encoder, "concat_backward", &[(0, d_y), (3, &d_part)], &params, batch * part);
                    parts.push((source.as_str(), d_part));
                    offset += part;
                }
                return parts;
            }
            Op::Upsample2d { scale } => {
                let params = [batch * in_shape[0], in_shape[1], in_shape[2], scale].map(|v| v as u32);
                self.dispatch(encoder, "upsample2d_backward", &[(0, d_y), (3, &d_x)], &params, len);
            }
            Op::Pad2d { top, left, bottom, right } => {
                let g = crate::engine::cpu::padding(batch, in_shape, top, left, bottom, right);
                let params = [g.planes, g.height, g.width, top, left, g.out_height(), g.out_width(), len].map(|v| v as u32);
                self.dispatch(encoder, "pad2d_backward", &[(0, d_y), (3, &d_x)], &params, len);
            }
            Op::HardSigmoid { alpha, beta } => {
                self.dispatch(encoder, "hard_sigmoid_backward", &[(0, d_y), (1, x), (3, &d_x)], &[len as u32, alpha.to_bits(), beta.to_bits(), 0], len);
            }
            Op::HardSwish => {
                self.dispatch(encoder, "hard_swish_backward", &[(0, d_y), (1, x), (3, &d_x)], &[len as u32, 0, 0, 0], len);
            }
            Op::Mul => {
                let other = node.inputs[1].as_str();
                let b = &acts[other];
                let b_len = batch * bundle.shape_of(other).expect("validated").iter().product::<usize>();
                let plane = (len / b_len) as u32;
                self.dispatch(encoder, "mul_backward_a", &[(1, b), (2, d_y), (3, &d_x)], &[len as u32, plane, 0, 0], len);
                let d_b = self.output_buffer("gradient", b_len);
                self.dispatch(encoder, "mul_backward_b", &[(0, x), (2, d_y), (3, &d_b)], &[b_len as u32, plane, 0, 0], b_len);
                return vec![(source, d_x), (other, d_b)];
            }
            Op::Add => return vec![(source, d_y.clone()), (node.inputs[1].as_str(), d_y.clone())],
            Op::Flatten | Op::Dropout => return vec![(source, d_y.clone())],
        }
        vec![(source, d_x)]
    }
}
