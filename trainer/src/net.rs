//! A bundle graph as a libtorch module: parameters in a `VarStore`, named as in the bundle.

use crate::precision::Precision;
use advlens_shared::model::{ModelSpec, Node, Op, INPUT_NAME};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use tch::{nn, Device, Kind, Tensor};

/// How a network's 4-D tensors (images, activations, convolution weights) lie in memory:
/// PyTorch's `contiguous_format` (N, C, H, W) or `channels_last` (N, H, W, C). Only speed
/// differs (oneDNN's channels-last convolutions and pools made a one-thread small-cnn PGD
/// training step 1.6x faster, `tests/bench/train-step.sh`); the values agree to float rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryFormat {
    Contiguous,
    ChannelsLast,
}

/// The process's choice (0: auto), set once from the command line as the thread count is.
static CHOSEN_FORMAT: AtomicU8 = AtomicU8::new(0);

impl MemoryFormat {
    /// `auto` (None), `contiguous` or `channels-last`.
    pub fn parse(name: &str) -> anyhow::Result<Option<Self>> {
        match name {
            "auto" => Ok(None),
            "contiguous" | "nchw" => Ok(Some(Self::Contiguous)),
            "channels-last" | "nhwc" => Ok(Some(Self::ChannelsLast)),
            other => anyhow::bail!("unknown memory format `{other}`: use auto, contiguous or channels-last"),
        }
    }

    /// Why `format` cannot run with `threads` libtorch threads on `device`, if it cannot.
    ///
    /// libtorch 2.11's oneDNN corrupts the heap in the weight gradient of a 1x1 convolution
    /// in channels-last with two or more CPU threads and some odd batch sizes (a width-4 resnet,
    /// batch 3 or 5: reproduced in PyTorch itself); with one thread it was not seen.
    pub fn check(format: Option<Self>, device: Device, threads: usize) -> anyhow::Result<()> {
        if format == Some(Self::ChannelsLast) && device == Device::Cpu && threads > 1 {
            anyhow::bail!(
                "--memory-format channels-last runs on a CPU with --threads 1 only: with more threads libtorch 2.11 (oneDNN) \
                 can corrupt memory in 1x1 convolutions' gradients; use --threads 1 or --memory-format contiguous"
            );
        }
        Ok(())
    }

    /// Makes `format` (None: auto) the one every [`Net`] built afterwards uses.
    pub fn choose(format: Option<Self>) {
        CHOSEN_FORMAT.store(format.map_or(0, |f| f as u8 + 1), Ordering::Relaxed);
    }

    /// The chosen format, or auto's: channels-last on a CPU with one libtorch thread (the
    /// trainer's default, where it was measured faster and is safe, see [`Self::check`]);
    /// contiguous otherwise, and on CUDA until measured there (`tests/bench/gpu-check.sh`).
    pub fn for_device(device: Device) -> Self {
        match CHOSEN_FORMAT.load(Ordering::Relaxed) {
            1 => Self::Contiguous,
            2 => Self::ChannelsLast,
            _ if device == Device::Cpu && tch::get_num_threads() == 1 => Self::ChannelsLast,
            _ => Self::Contiguous,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Contiguous => "contiguous",
            Self::ChannelsLast => "channels-last",
        }
    }

    /// `t` laid out in this format (4-D tensors only; others are returned as they are). Strides
    /// change, not shapes: every index reads the same value.
    pub fn apply(self, t: &Tensor) -> Tensor {
        match self {
            // Exact strides, written out: `permute(..).contiguous()` skips the copy when a
            // dimension is 1 (a grey image, a one-channel filter), leaving strides that libtorch
            // does not read as channels-last.
            Self::ChannelsLast if t.dim() == 4 => {
                let [n, c, h, w] = [0, 1, 2, 3].map(|d| t.size()[d]);
                let mut out = Tensor::empty_strided([n, c, h, w], [h * w * c, 1, w * c, c], (t.kind(), t.device()));
                out.copy_(t);
                out
            }
            _ => t.shallow_clone(),
        }
    }
}

/// The network of a [`ModelSpec`], on libtorch.
#[derive(Debug)]
pub struct Net {
    spec: ModelSpec,
    params: HashMap<String, Tensor>,
    mean: Tensor,
    std: Tensor,
    format: MemoryFormat,
    precision: Precision,
}

impl Net {
    /// Creates the parameters under `root`, initialised as PyTorch does
    /// (uniform in +-1/sqrt(fan_in) for weights and biases), in the device's [`MemoryFormat`].
    pub fn new(root: &nn::Path, spec: &ModelSpec) -> Self {
        Self::with_format(root, spec, MemoryFormat::for_device(root.device()))
    }

    /// [`Net::new`] in the given memory format.
    pub fn with_format(root: &nn::Path, spec: &ModelSpec, format: MemoryFormat) -> Self {
        let mut params = HashMap::new();
        for node in &spec.nodes {
            let weights = node.op.weight_shapes(&node.name);
            let fan_in = weights.first().map(|(_, s)| s[1..].iter().product::<usize>()).unwrap_or(1);
            let bound = 1.0 / (fan_in as f64).sqrt();
            for (name, shape) in weights {
                let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let leaf = name.rsplit('.').next().expect("names are <node>.<leaf>");
                let path = root / node.name.as_str();
                let var = match (&node.op, leaf) {
                    // Batch norm starts as the identity; its running statistics are not trained.
                    (Op::BatchNorm2d { .. }, "weight") => path.var(leaf, &dims, nn::Init::Const(1.0)),
                    (Op::BatchNorm2d { .. }, "bias") => path.var(leaf, &dims, nn::Init::Const(0.0)),
                    (Op::BatchNorm2d { .. }, "running_mean") => path.zeros_no_train(leaf, &dims),
                    (Op::BatchNorm2d { .. }, _) => path.ones_no_train(leaf, &dims),
                    // So does a channel norm (PyTorch's LayerNorm).
                    (Op::ChannelNorm { .. } | Op::InstanceNorm { .. }, "weight") => path.var(leaf, &dims, nn::Init::Const(1.0)),
                    (Op::ChannelNorm { .. } | Op::InstanceNorm { .. }, _) => path.var(leaf, &dims, nn::Init::Const(0.0)),
                    _ => path.var(leaf, &dims, nn::Init::Uniform { lo: -bound, up: bound }),
                };
                // The variable itself is re-laid (set_data keeps it the VarStore's): the gradient
                // and Adam's moments then share its layout.
                let mut var = var;
                if dims.len() == 4 && format != MemoryFormat::Contiguous {
                    tch::no_grad(|| var.set_data(&format.apply(&var)));
                }
                params.insert(name, var);
            }
        }
        let c = spec.input.channels as i64;
        let device = root.device();
        let mean = Tensor::from_slice(&spec.input.mean).view([1, c, 1, 1]).to_device(device);
        let std = Tensor::from_slice(&spec.input.std).view([1, c, 1, 1]).to_device(device);
        Self { spec: spec.clone(), params, mean, std, format, precision: Precision::F32 }
    }

    /// The same network computing its products in `precision` (the weights stay f32).
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn memory_format(&self) -> MemoryFormat {
        self.format
    }

    /// Logits for images `[N, C, H, W]` in [0, 1], in inference mode.
    pub fn forward(&self, images: &Tensor) -> Tensor {
        self.forward_t(images, false)
    }

    /// Logits (f32 whatever the [`Precision`]); `train` makes batch norms use (and update)
    /// batch statistics.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        let mut acts = self.forward_all_t(images, train);
        Precision::for_loss(&acts.remove(&self.spec.output).expect("validated graphs have their output"))
    }

    /// The output of every node (and `"input"`, normalised), in the type it was computed in
    /// (bf16 after a product under [`Precision::Bf16`]).
    pub fn forward_all_t(&self, images: &Tensor, train: bool) -> HashMap<String, Tensor> {
        self.forward_scaled(images, train, None)
    }

    /// Logits in inference mode with `layer`'s output multiplied by `scale` (`[N or 1, C, 1, 1]`):
    /// zeros silence channels (tracing's exact effect of a neuron, as the shared engines'
    /// `forward_ablated`).
    pub fn forward_with_layer_scaled(&self, images: &Tensor, layer: &str, scale: &Tensor) -> Tensor {
        let mut acts = self.forward_scaled(images, false, Some((layer, scale)));
        Precision::for_loss(&acts.remove(&self.spec.output).expect("validated graphs have their output"))
    }

    fn forward_scaled(&self, images: &Tensor, train: bool, scaled: Option<(&str, &Tensor)>) -> HashMap<String, Tensor> {
        let mut acts: HashMap<String, Tensor> = HashMap::new();
        acts.insert(INPUT_NAME.into(), self.format.apply(&((images - &self.mean) / &self.std)));
        for node in &self.spec.nodes {
            let y = self.node_output(node, &acts, train);
            let y = match scaled {
                Some((layer, scale)) if layer == node.name => y * scale,
                _ => y,
            };
            acts.insert(node.name.clone(), y);
        }
        acts
    }

    /// Logits in inference mode with `layer`'s output replaced by `replaced`, recomputing only
    /// the nodes downstream of `layer` and reading every other node from `acts` (a
    /// [`Self::forward_all_t`] of the same images): the same numbers as
    /// [`Self::forward_with_layer_scaled`] for `replaced` = the layer's output times the scale,
    /// at the cost of the network's tail only (tracing ablates each channel of a late layer).
    pub fn forward_after(&self, acts: &HashMap<String, Tensor>, layer: &str, replaced: &Tensor) -> Tensor {
        assert!(acts.contains_key(layer), "forward_after: `{layer}` is not a node of {}", self.spec.name);
        let mut changed: HashMap<String, Tensor> = HashMap::new();
        changed.insert(layer.to_string(), replaced.shallow_clone());
        // Nodes are in topological order: a node is downstream when one of its inputs is.
        let after = self.spec.nodes.iter().position(|n| n.name == layer).map_or(0, |k| k + 1);
        for node in &self.spec.nodes[after..] {
            if node.inputs.iter().any(|i| changed.contains_key(i)) {
                let view: HashMap<String, Tensor> =
                    node.inputs.iter().map(|i| (i.clone(), changed.get(i).unwrap_or_else(|| &acts[i]).shallow_clone())).collect();
                let y = self.node_output(node, &view, false);
                changed.insert(node.name.clone(), y);
            }
        }
        let logits = match changed.remove(&self.spec.output) {
            Some(y) => y,
            // The output does not depend on the layer.
            None => acts[&self.spec.output].shallow_clone(),
        };
        Precision::for_loss(&logits)
    }

    /// One node's output from its inputs' values in `acts`.
    fn node_output(&self, node: &Node, acts: &HashMap<String, Tensor>, train: bool) -> Tensor {
        let x = &acts[&node.inputs[0]];
        let p = |leaf: &str| &self.params[&format!("{}.{leaf}", node.name)];
        // A product's operands in the type it runs in (see `Precision`).
        let low = |t: &Tensor| self.precision.for_product(t);
        match node.op {
            Op::Conv2d { stride, padding, groups, dilation, .. } => {
                let (s, pad, d) = (stride as i64, padding as i64, dilation as i64);
                low(x).conv2d(&low(p("weight")), Some(low(p("bias"))), [s, s], [pad, pad], [d, d], groups as i64)
            }
            Op::ConvTranspose2d { stride, padding, output_padding, groups, dilation, .. } => {
                let (s, pad, op, d) = (stride as i64, padding as i64, output_padding as i64, dilation as i64);
                low(x).conv_transpose2d(&low(p("weight")), Some(low(p("bias"))), [s, s], [pad, pad], [op, op], groups as i64, [d, d])
            }
            Op::MaxPool2d { kernel, stride, padding } => {
                let (k, s, pad) = (kernel as i64, stride as i64, padding as i64);
                x.max_pool2d([k, k], [s, s], [pad, pad], [1, 1], false)
            }
            Op::AvgPool2d { kernel, stride, padding } => {
                let (k, s, pad) = (kernel as i64, stride as i64, padding as i64);
                x.avg_pool2d([k, k], [s, s], [pad, pad], false, true, None)
            }
            Op::GlobalAvgPool => x.mean_dim([2i64, 3].as_slice(), false, Kind::Float),
            Op::BatchNorm2d { eps, .. } => x.batch_norm(
                Some(p("weight")),
                Some(p("bias")),
                Some(p("running_mean")),
                Some(p("running_var")),
                train,
                0.1,
                f64::from(eps),
                false,
            ),
            Op::Linear { .. } => low(x).linear(&low(p("weight")), Some(low(p("bias")))),
            Op::Relu => x.relu(),
            // Clamp passes the gradient at the bounds themselves too; the engines (and
            // PyTorch's ReLU6) do not: a difference only for inputs exactly on a bound.
            Op::Clip { min, max } => x.clamp(f64::from(min), f64::from(max)),
            Op::Sigmoid => x.sigmoid(),
            // tch's leaky_relu has no slope argument: x where x > 0, else alpha x (gradient
            // alpha at 0, as PyTorch's and the engines').
            Op::LeakyRelu { alpha } => x.where_self(&x.gt(0.0), &(x * f64::from(alpha))),
            Op::HardSigmoid { alpha, beta } => (x * f64::from(alpha) + f64::from(beta)).clamp(0.0, 1.0),
            Op::HardSwish => x.hardswish(),
            Op::Gelu => x.gelu("none"),
            // PyTorch's LayerNorm over the last axis, the channels moved there and back
            // (timm's LayerNorm2d); a feature vector [N, C] is normalised as it is.
            Op::ChannelNorm { channels, eps } => {
                let norm = |t: &Tensor| t.layer_norm([channels as i64], Some(p("weight")), Some(p("bias")), f64::from(eps), false);
                if x.dim() == 4 {
                    norm(&x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
                } else {
                    norm(x)
                }
            }
            // Statistics of each image's planes, none kept: use_input_stats in training and
            // evaluation alike.
            Op::InstanceNorm { eps, .. } => x.instance_norm(Some(p("weight")), Some(p("bias")), None::<&Tensor>, None::<&Tensor>, true, 0.1, f64::from(eps), false),
            Op::Mul => {
                let b = &acts[&node.inputs[1]];
                // A per-channel vector [N, C] scales the maps [N, C, H, W].
                if b.dim() == 2 && x.dim() == 4 {
                    x * b.unsqueeze(-1).unsqueeze(-1)
                } else {
                    x * b
                }
            }
            Op::Upsample2d { scale } => {
                let s = scale as i64;
                x.repeat_interleave_self_int(s, Some(2), None).repeat_interleave_self_int(s, Some(3), None)
            }
            Op::ResizeBilinear { scale, align_corners } => {
                let s = scale as i64;
                let size = [x.size()[2] * s, x.size()[3] * s];
                x.upsample_bilinear2d(size, align_corners, Some(scale as f64), Some(scale as f64))
            }
            // F.pad's order: last axis first (left, right), then top, bottom.
            Op::Pad2d { top, left, bottom, right } => x.constant_pad_nd([left, right, top, bottom].map(|p| p as i64)),
            Op::Add => x + &acts[&node.inputs[1]],
            Op::Concat => Tensor::cat(&node.inputs.iter().map(|i| &acts[i]).collect::<Vec<_>>(), 1),
            Op::Flatten => x.flatten(1, -1),
            Op::SliceChannels { start, end } => x.narrow(1, start as i64, (end - start) as i64),
            // p = 0.5 as in AlexNet; identity at inference, like the shared engines.
            Op::Dropout => x.dropout(0.5, train),
        }
    }

    /// Overwrites the parameters with `weights` (bundle names, e.g. from a loaded bundle).
    pub fn load_weights(&mut self, weights: &HashMap<String, advlens_shared::Tensor>) -> anyhow::Result<()> {
        if let Some(name) = self.params.keys().find(|n| !weights.contains_key(*n)) {
            anyhow::bail!("no tensor `{name}` to load");
        }
        self.load_some_weights(weights)
    }

    /// Overwrites the parameters named in `weights` and leaves the others as they are (a
    /// fine-tuning run's fresh head); a name the network lacks or a shape it does not have is an error.
    pub fn load_some_weights(&mut self, weights: &HashMap<String, advlens_shared::Tensor>) -> anyhow::Result<()> {
        for (name, w) in weights {
            let param = self.params.get_mut(name).ok_or_else(|| anyhow::anyhow!("the network has no tensor `{name}`"))?;
            let shape: Vec<i64> = w.shape().iter().map(|&d| d as i64).collect();
            if param.size() != shape {
                anyhow::bail!("tensor `{name}` is {shape:?}, the network's is {:?}", param.size());
            }
            let value = Tensor::from_slice(w.data()).view(shape.as_slice()).to_device(param.device());
            tch::no_grad(|| param.f_copy_(&value))?;
        }
        Ok(())
    }

    /// Every tensor of the network by bundle name (batch-norm running statistics included).
    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.params
    }

    /// The trained parameters, sorted by name (running statistics excluded).
    pub fn trainable(&self) -> Vec<(&String, &Tensor)> {
        let mut out: Vec<_> = self.params.iter().filter(|(_, t)| t.requires_grad()).collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// The parameters as `(bundle name, CPU f32 tensor)`.
    pub fn named_parameters(&self) -> impl Iterator<Item = (&String, Tensor)> {
        self.params.iter().map(|(name, t)| (name, t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float)))
    }
}

/// Images as a float tensor in [0, 1] of shape `[N, C, H, W]`.
pub fn images_tensor(pixels: &[u8], shape: [usize; 3], device: tch::Device) -> Tensor {
    let n = pixels.len() / shape.iter().product::<usize>();
    let [c, h, w] = shape.map(|d| d as i64);
    (Tensor::from_slice(pixels).to_kind(Kind::Float) / 255.0).view([n as i64, c, h, w]).to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use advlens_shared::model::InputSpec;
    use tch::Device;

    /// The tail-only forward gives the full forward's logits for every layer of a ResNet
    /// (skip connections cross its blocks' insides) and of an AlexNet, channel zeroed or not.
    #[test]
    fn forward_after_equals_the_full_forward_with_the_layer_scaled() {
        tch::manual_seed(3);
        let input = InputSpec { channels: 3, height: 32, width: 32, mean: vec![0.5; 3], std: vec![0.25; 3] };
        let classes: Vec<String> = (0..10).map(|k| format!("c{k}")).collect();
        for arch in ["resnet", "alexnet"] {
            let spec = crate::arch::build(arch, "t", input.clone(), classes.clone(), 4).unwrap();
            let vs = nn::VarStore::new(Device::Cpu);
            let net = Net::new(&vs.root(), &spec);
            let x = Tensor::rand([3, 3, 32, 32], (Kind::Float, Device::Cpu));
            let acts = tch::no_grad(|| net.forward_all_t(&x, false));
            let mut checked = 0;
            for node in spec.nodes.iter().filter(|n| acts[&n.name].dim() == 4) {
                let channels = acts[&node.name].size()[1];
                let scale = Tensor::ones([1, channels, 1, 1], (Kind::Float, Device::Cpu)).index_fill(1, &Tensor::from_slice(&[channels - 1]), 0.0);
                let (full, tail) = tch::no_grad(|| (net.forward_with_layer_scaled(&x, &node.name, &scale), net.forward_after(&acts, &node.name, &(&acts[&node.name] * &scale))));
                let diff = (&full - &tail).abs().max().double_value(&[]);
                assert!(diff <= 1e-6, "{arch} {}: tail-only forward differs by {diff}", node.name);
                checked += 1;
            }
            assert!(checked > 5, "{arch}: only {checked} layers checked");
            // Scaling by one changes nothing: the unchanged logits come back.
            let same = net.forward_after(&acts, INPUT_NAME, &acts[INPUT_NAME]);
            assert_eq!((&same - &acts[&spec.output]).abs().max().double_value(&[]), 0.0);
        }
    }

    /// Channels-last is a layout, not a different network: from the same seed, the logits,
    /// the input gradient and a training step's weight gradients agree with the contiguous
    /// network's to float rounding; and the convolutions really run channels-last (strides
    /// libtorch reads as such, also for one-channel images and filters, where a permute and
    /// `contiguous()` would silently keep the old strides).
    #[test]
    fn channels_last_networks_compute_what_contiguous_ones_do() {
        let classes: Vec<String> = (0..10).map(|k| format!("c{k}")).collect();
        // The supported configuration (MemoryFormat::check): with two threads, libtorch's own
        // 1x1 convolution gradient corrupts the heap for this resnet at batch 3.
        tch::set_num_threads(1);
        for (arch, c) in [("small-cnn", 1), ("resnet", 3)] {
            let input = InputSpec { channels: c, height: 28, width: 28, mean: vec![0.5; c], std: vec![0.25; c] };
            let spec = crate::arch::build(arch, "t", input, classes.clone(), 4).unwrap();
            let x = Tensor::rand([3, c as i64, 28, 28], (Kind::Float, Device::Cpu));
            let y = Tensor::from_slice(&[1i64, 4, 7]);
            // The same weights by copy, not by seeding twice: tests in other threads draw from
            // libtorch's global generator too, and a draw between a seed and the
            // initialisation once gave the two nets different weights.
            let plain_vs = nn::VarStore::new(Device::Cpu);
            let plain_net = Net::with_format(&plain_vs.root(), &spec, MemoryFormat::Contiguous);
            let mut last_vs = nn::VarStore::new(Device::Cpu);
            let last_net = Net::with_format(&last_vs.root(), &spec, MemoryFormat::ChannelsLast);
            last_vs.copy(&plain_vs).unwrap();
            let run = |net: Net| {
                let xr = x.detach().set_requires_grad(true);
                let loss = net.forward_t(&xr, true).cross_entropy_for_logits(&y);
                loss.backward();
                let acts = tch::no_grad(|| net.forward_all_t(&x, false));
                let grads: Vec<(String, Tensor)> = net.trainable().into_iter().map(|(n, p)| (n.clone(), p.grad())).collect();
                (net, acts, xr.grad(), grads)
            };
            let (plain, plain_acts, plain_dx, plain_grads) = run(plain_net);
            let (last, last_acts, last_dx, last_grads) = run(last_net);
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let scale = a.abs().max().double_value(&[]).max(1e-6);
                let diff = (a - b).abs().max().double_value(&[]) / scale;
                assert!(diff < 1e-5, "{arch} {what}: channels-last differs by {diff} (relative)");
            };
            close(&plain_acts[&spec.output], &last_acts[&spec.output], "logits");
            close(&plain_dx, &last_dx, "input gradient");
            // A convolution's bias before a training-mode batch norm has a zero gradient in
            // exact arithmetic (the norm removes the mean): compare on the largest gradient's scale.
            let largest = plain_grads.iter().map(|(_, g)| g.abs().max().double_value(&[])).fold(0.0, f64::max);
            for ((name, a), (_, b)) in plain_grads.iter().zip(&last_grads) {
                let diff = (a - b).abs().max().double_value(&[]) / largest;
                assert!(diff < 1e-5, "{arch} gradient of {name}: channels-last differs by {diff} of the largest gradient");
            }
            let channels_last = |t: &Tensor| {
                let [_, c, h, w] = [0, 1, 2, 3].map(|d| t.size()[d]);
                t.stride() == vec![h * w * c, 1, w * c, c]
            };
            for (name, t) in last.tensors().iter().filter(|(_, t)| t.dim() == 4) {
                assert!(channels_last(t), "{arch} {name}: strides {:?}", t.stride());
                assert!(!channels_last(&plain.tensors()[name]) || t.size()[1] == 1, "{arch} {name}: the contiguous net is channels-last");
            }
            let conv = spec.nodes.iter().find(|n| matches!(n.op, Op::Conv2d { .. })).unwrap();
            assert!(channels_last(&last_acts[&conv.name]), "{arch}: the first convolution's output is not channels-last");
            assert_eq!(last.memory_format(), MemoryFormat::ChannelsLast);
        }
    }
}
