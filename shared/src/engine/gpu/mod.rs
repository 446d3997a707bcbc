//! The WebGPU engine: the same layers as [`crate::engine::cpu::layers`], as WGSL compute
//! kernels (one file per layer in `kernels/`, each stating its formula), run through wgpu.
//!
//! Natively it runs on any Vulkan/Metal/DX12 adapter (lavapipe in the tests); in the browser
//! on WebGPU. Every failure becomes an [`Error`] so that the caller can fall back to the CPU.

mod backward;

use std::collections::HashMap;
use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::engine::cpu::layers::batch_norm_fold as fold_batch_norm;
use crate::engine::cpu::{check_input, window};
use crate::engine::objective::Ablation;
use crate::model::{Bundle, Op};
use crate::{Error, Result, Tensor};

/// The WGSL source of every kernel, by entry point (the tests validate each with naga).
pub const KERNELS: [(&str, &str); 36] = [
    ("normalize_forward", include_str!("kernels/normalize.wgsl")),
    ("conv2d_forward", include_str!("kernels/conv2d.wgsl")),
    ("relu_forward", include_str!("kernels/relu.wgsl")),
    ("clip_forward", include_str!("kernels/activations.wgsl")),
    ("max_pool2d_forward", include_str!("kernels/max_pool2d.wgsl")),
    ("linear_forward", include_str!("kernels/linear.wgsl")),
    ("avg_pool2d_forward", include_str!("kernels/avg_pool2d.wgsl")),
    ("global_avg_pool_forward", include_str!("kernels/global_avg_pool.wgsl")),
    ("batch_norm_forward", include_str!("kernels/batch_norm.wgsl")),
    ("add_forward", include_str!("kernels/add.wgsl")),
    ("conv2d_backward", include_str!("kernels/conv2d_backward.wgsl")),
    ("max_pool2d_backward", include_str!("kernels/pool2d_backward.wgsl")),
    ("avg_pool2d_backward", include_str!("kernels/pool2d_backward.wgsl")),
    ("linear_backward", include_str!("kernels/linear_backward.wgsl")),
    ("relu_backward", include_str!("kernels/elementwise_backward.wgsl")),
    ("clip_backward", include_str!("kernels/activations.wgsl")),
    ("sigmoid_forward", include_str!("kernels/activations.wgsl")),
    ("sigmoid_backward", include_str!("kernels/activations.wgsl")),
    ("leaky_relu_forward", include_str!("kernels/activations.wgsl")),
    ("leaky_relu_backward", include_str!("kernels/activations.wgsl")),
    ("concat_forward", include_str!("kernels/concat.wgsl")),
    ("concat_backward", include_str!("kernels/concat.wgsl")),
    ("pad2d_forward", include_str!("kernels/pad2d.wgsl")),
    ("add_channel_bias", include_str!("kernels/channel_bias.wgsl")),
    ("upsample2d_forward", include_str!("kernels/upsample2d.wgsl")),
    ("upsample2d_backward", include_str!("kernels/upsample2d.wgsl")),
    ("pad2d_backward", include_str!("kernels/pad2d.wgsl")),
    ("hard_sigmoid_forward", include_str!("kernels/activations.wgsl")),
    ("hard_sigmoid_backward", include_str!("kernels/activations.wgsl")),
    ("hard_swish_forward", include_str!("kernels/activations.wgsl")),
    ("hard_swish_backward", include_str!("kernels/activations.wgsl")),
    ("mul_forward", include_str!("kernels/mul.wgsl")),
    ("mul_backward_a", include_str!("kernels/mul.wgsl")),
    ("mul_backward_b", include_str!("kernels/mul.wgsl")),
    ("channel_scale", include_str!("kernels/elementwise_backward.wgsl")),
    ("global_avg_pool_backward", include_str!("kernels/elementwise_backward.wgsl")),
];

const WORKGROUP: u32 = 64;
const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// Runs a [`Bundle`] on a wgpu device; the weights live on the device.
pub struct GpuEngine {
    bundle: Arc<Bundle>,
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: wgpu::AdapterInfo,
    pipelines: HashMap<&'static str, wgpu::ComputePipeline>,
    weights: HashMap<String, wgpu::Buffer>,
    /// `[mean.., std..]` of the input normalisation.
    stats: wgpu::Buffer,
    lost: DeviceLost,
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine").field("adapter", &self.adapter.name).finish_non_exhaustive()
    }
}

pub use wgpu;

/// An open device with its queue and the adapter it runs on. Separate from [`GpuEngine`] so
/// that tests and pages can share one device between models.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    /// Set (with the reason) when the device is lost; shared by every engine on it.
    pub lost: DeviceLost,
}

/// Why the device was lost, once it was.
pub type DeviceLost = Arc<std::sync::Mutex<Option<String>>>;

/// Finds the default adapter and opens a device on it.
pub async fn request_device() -> Result<GpuContext> {
    #[cfg(target_arch = "wasm32")]
    if !browser_has_webgpu() {
        return Err(Error::NoGpuAdapter("this browser does not expose navigator.gpu".into()));
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions::default())
        .await
        .map_err(|e| {
            if cfg!(target_arch = "wasm32") {
                // wgpu lists every native backend it lacks here, which tells a user nothing.
                Error::NoGpuAdapter("the browser offers WebGPU but no adapter for it".into())
            } else {
                Error::NoGpuAdapter(e.to_string())
            }
        })?;
    let info = adapter.get_info();
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("advlens"),
            required_limits: adapter.limits(),
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoGpuAdapter(format!("adapter `{}` refused a device: {e}", info.name)))?;
    let lost = DeviceLost::default();
    let flag = lost.clone();
    device.set_device_lost_callback(move |reason, message| {
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message} ({reason:?})"));
    });
    Ok(GpuContext { device, queue, adapter: info, lost })
}

#[cfg(target_arch = "wasm32")]
fn browser_has_webgpu() -> bool {
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok();
    navigator
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()).ok())
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

impl GpuEngine {
    /// Opens the default adapter and uploads the model.
    pub async fn new(bundle: Arc<Bundle>) -> Result<Self> {
        Self::with_context(bundle, request_device().await?).await
    }

    /// Uploads the model to an open device.
    pub async fn with_context(bundle: Arc<Bundle>, context: GpuContext) -> Result<Self> {
        let GpuContext { device, queue, adapter, lost } = context;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut pipelines = HashMap::new();
        for (entry, source) in KERNELS {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
            pipelines.insert(entry, pipeline);
        }
        let mut weights: HashMap<String, wgpu::Buffer> = bundle
            .weights()
            .iter()
            .map(|(name, t)| (name.clone(), storage_buffer(&device, name, t.data())))
            .collect();
        // Batch norms run folded: upload `<node>.scale` and `<node>.shift`.
        for node in &bundle.spec().nodes {
            if let Op::BatchNorm2d { eps, .. } = node.op {
                let t = |leaf: &str| bundle.weight(&format!("{}.{leaf}", node.name)).data();
                let (scale, shift) = fold_batch_norm(t("weight"), t("bias"), t("running_mean"), t("running_var"), eps);
                for (leaf, data) in [("scale", scale), ("shift", shift)] {
                    let name = format!("{}.{leaf}", node.name);
                    weights.insert(name.clone(), storage_buffer(&device, &name, &data));
                }
            }
        }
        let spec = &bundle.spec().input;
        let stats: Vec<f32> = spec.mean.iter().chain(&spec.std).copied().collect();
        let stats = storage_buffer(&device, "input stats", &stats);
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!("setting up the model failed: {e}")));
        }
        Ok(Self { bundle, device, queue, adapter, pipelines, weights, stats, lost })
    }

    /// Destroys the device, as a driver reset or a lost GPU would: every later call fails with
    /// [`Error::Gpu`]. For tests of what a caller does then (the explorer moves to the CPU engine).
    pub fn destroy_device(&self) {
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some("destroyed by the caller".into());
        self.device.destroy();
    }

    /// `Error::Gpu` once the device is lost: checked before each call, because some of wgpu's
    /// calls panic on a lost device instead of failing.
    pub(crate) fn alive(&self) -> Result<()> {
        match self.lost.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(why) => Err(Error::Gpu(format!("the GPU device was lost ({why})"))),
            None => Ok(()),
        }
    }

    /// The adapter the engine runs on (name, backend, whether it is a software fallback).
    pub fn adapter(&self) -> &wgpu::AdapterInfo {
        &self.adapter
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Class logits `[N, classes]` for images `[N, C, H, W]` in [0, 1].
    pub async fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.alive()?;
        let batch = check_input(&self.bundle, input)?;
        let scopes = self.error_scopes();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let acts = self.encode_forward(&mut encoder, input, batch, &Ablation::default());
        let spec = self.bundle.spec();
        let classes = spec.classes.len();
        let mut out = self.read_back(encoder, &[(&acts[&spec.output], batch * classes)]).await?;
        scopes.check(batch).await?;
        Tensor::new(vec![batch, classes], out.remove(0))
    }

    /// The outputs of the nodes in `names` (`"input"`: the normalised input), with the channels
    /// of `ablation` zeroed; only the requested activations are copied back.
    pub async fn forward_all(&self, input: &Tensor, names: &[&str], ablation: &Ablation) -> Result<HashMap<String, Tensor>> {
        self.alive()?;
        let bundle = &*self.bundle;
        let batch = check_input(bundle, input)?;
        ablation.validate(bundle)?;
        let mut shapes = Vec::with_capacity(names.len());
        for name in names {
            let shape = bundle.shape_of(name).ok_or_else(|| Error::Graph(format!("the model has no node `{name}`")))?;
            shapes.push([&[batch][..], shape].concat());
        }
        let scopes = self.error_scopes();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let acts = self.encode_forward(&mut encoder, input, batch, ablation);
        let reads: Vec<(&wgpu::Buffer, usize)> =
            names.iter().zip(&shapes).map(|(name, shape)| (&acts[*name], shape.iter().product())).collect();
        let values = self.read_back(encoder, &reads).await?;
        scopes.check(batch).await?;
        names
            .iter()
            .zip(shapes)
            .zip(values)
            .map(|((name, shape), data)| Ok((name.to_string(), Tensor::new(shape, data)?)))
            .collect()
    }

    /// Logits with the channels of `ablation` zeroed after their nodes.
    pub async fn forward_ablated(&self, input: &Tensor, ablation: &Ablation) -> Result<Tensor> {
        let output = self.bundle.spec().output.as_str();
        let mut acts = self.forward_all(input, &[output], ablation).await?;
        Ok(acts.remove(output).expect("requested"))
    }

    /// Records the forward pass; returns every node's output buffer (and the normalised input).
    pub(crate) fn encode_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: &Tensor,
        batch: usize,
        ablation: &Ablation,
    ) -> HashMap<String, wgpu::Buffer> {
        let bundle = &*self.bundle;
        let spec = bundle.spec();
        let [c, h, w] = bundle.input_shape();
        let x = storage_buffer(&self.device, "input", input.data());
        let mut acts: HashMap<String, wgpu::Buffer> = HashMap::new();
        let normalized = self.output_buffer("input", input.len());
        let params = [input.len() as u32, c as u32, (h * w) as u32, 0];
        self.dispatch(encoder, "normalize_forward", &[(0, &x), (1, &self.stats), (3, &normalized)], &params, input.len());
        acts.insert(crate::model::INPUT_NAME.to_string(), normalized);

        for node in &spec.nodes {
            let in_shape = bundle.shape_of(&node.inputs[0]).expect("validated");
            let out_shape = bundle.shape_of(&node.name).expect("validated");
            let len = batch * out_shape.iter().product::<usize>();
            let x = &acts[&node.inputs[0]];
            let weight = |suffix: &str| &self.weights[&format!("{}.{suffix}", node.name)];
            let y = match node.op {
                Op::Conv2d { out_channels, kernel, stride, padding, groups, dilation, .. } => {
                    let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                    let y = self.output_buffer(&node.name, len);
                    let params = [g.batch, g.in_channels, g.height, g.width, out_channels, g.out_height, g.out_width, kernel, stride, padding, groups, dilation];
                    let params = params.map(|v| v as u32);
                    self.dispatch(encoder, "conv2d_forward", &[(0, x), (1, weight("weight")), (2, weight("bias")), (3, &y)], &params, len);
                    y
                }
                Op::ConvTranspose2d { in_channels, out_channels, kernel, stride, padding, groups, dilation, .. } => {
                    // The input gradient of the convolution it transposes, then the bias.
                    let g = crate::engine::cpu::transposed_window(batch, in_shape, out_shape, kernel, stride, padding, dilation);
                    let y = self.output_buffer(&node.name, len);
                    let params = [g.batch, g.in_channels, g.height, g.width, in_channels, g.out_height, g.out_width, kernel, stride, padding, groups, dilation];
                    self.dispatch(encoder, "conv2d_backward", &[(0, x), (1, weight("weight")), (3, &y)], &params.map(|v| v as u32), len);
                    let params = [len, g.height * g.width, out_channels, 0].map(|v| v as u32);
                    self.dispatch(encoder, "add_channel_bias", &[(1, weight("bias")), (3, &y)], &params, len);
                    y
                }
                Op::MaxPool2d { kernel, stride, padding } => {
                    let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                    let y = self.output_buffer(&node.name, len);
                    let params = [g.batch * g.in_channels, g.height, g.width, g.out_height, g.out_width, kernel, stride, padding];
                    self.dispatch(encoder, "max_pool2d_forward", &[(0, x), (3, &y)], &params.map(|v| v as u32), len);
                    y
                }
                Op::Linear { in_features, out_features } => {
                    let y = self.output_buffer(&node.name, len);
                    let params = [batch as u32, in_features as u32, out_features as u32, 0];
                    self.dispatch(encoder, "linear_forward", &[(0, x), (1, weight("weight")), (2, weight("bias")), (3, &y)], &params, len);
                    y
                }
                Op::AvgPool2d { kernel, stride, padding } => {
                    let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                    let y = self.output_buffer(&node.name, len);
                    let params = [g.batch * g.in_channels, g.height, g.width, g.out_height, g.out_width, kernel, stride, padding];
                    self.dispatch(encoder, "avg_pool2d_forward", &[(0, x), (3, &y)], &params.map(|v| v as u32), len);
                    y
                }
                Op::GlobalAvgPool => {
                    let y = self.output_buffer(&node.name, len);
                    let params = [len as u32, (in_shape[1] * in_shape[2]) as u32, 0, 0];
                    self.dispatch(encoder, "global_avg_pool_forward", &[(0, x), (3, &y)], &params, len);
                    y
                }
                Op::BatchNorm2d { channels, .. } => {
                    let y = self.output_buffer(&node.name, len);
                    let params = [len as u32, channels as u32, (in_shape[1] * in_shape[2]) as u32, 0];
                    let buffers = [(0, x), (1, weight("scale")), (2, weight("shift")), (3, &y)];
                    self.dispatch(encoder, "batch_norm_forward", &buffers, &params, len);
                    y
                }
                Op::Add => {
                    let y = self.output_buffer(&node.name, len);
                    let b = &acts[&node.inputs[1]];
                    self.dispatch(encoder, "add_forward", &[(0, x), (1, b), (3, &y)], &[len as u32, 0, 0, 0], len);
                    y
                }
                Op::Relu => {
                    let y = self.output_buffer(&node.name, len);
                    self.dispatch(encoder, "relu_forward", &[(0, x), (3, &y)], &[len as u32, 0, 0, 0], len);
                    y
                }
                Op::Clip { min, max } => {
                    let y = self.output_buffer(&node.name, len);
                    // The activation kernels read x through binding 1 (binding 0 is the gradient).
                    self.dispatch(encoder, "clip_forward", &[(1, x), (3, &y)], &[len as u32, min.to_bits(), max.to_bits(), 0], len);
                    y
                }
                Op::Sigmoid => {
                    let y = self.output_buffer(&node.name, len);
                    self.dispatch(encoder, "sigmoid_forward", &[(1, x), (3, &y)], &[len as u32, 0, 0, 0], len);
                    y
                }
                Op::LeakyRelu { alpha } => {
                    let y = self.output_buffer(&node.name, len);
                    self.dispatch(encoder, "leaky_relu_forward", &[(1, x), (3, &y)], &[len as u32, alpha.to_bits(), 0, 0], len);
                    y
                }
                Op::Concat => {
                    let y = self.output_buffer(&node.name, len);
                    let total = len / batch;
                    let mut offset = 0;
                    for source in &node.inputs {
                        let part: usize = bundle.shape_of(source).expect("validated").iter().product();
                        let params = [(batch * part) as u32, part as u32, total as u32, offset as u32];
                        self.dispatch(encoder, "concat_forward", &[(0, &acts[source]), (3, &y)], &params, batch * part);
                        offset += part;
                    }
                    y
                }
                Op::HardSigmoid { alpha, beta } => {
                    let y = self.output_buffer(&node.name, len);
                    self.dispatch(encoder, "hard_sigmoid_forward", &[(1, x), (3, &y)], &[len as u32, alpha.to_bits(), beta.to_bits(), 0], len);
                    y
                }
                Op::Upsample2d { scale } => {
                    let y = self.output_buffer(&node.name, len);
                    let params = [batch * in_shape[0], in_shape[1], in_shape[2], scale].map(|v| v as u32);
                    self.dispatch(encoder, "upsample2d_forward", &[(0, x), (3, &y)], &params, len);
                    y
                }
                Op::Pad2d { top, left, bottom, right } => {
                    let g = crate::engine::cpu::padding(batch, in_shape, top, left, bottom, right);
                    let y = self.output_buffer(&node.name, len);
                    let params = [g.planes, g.height, g.width, top, left, g.out_height(), g.out_width(), len].map(|v| v as u32);
                    self.dispatch(encoder, "pad2d_forward", &[(0, x), (3, &y)], &params, len);
                    y
                }
                Op::HardSwish => {
                    let y = self.output_buffer(&node.name, len);
                    self.dispatch(encoder, "hard_swish_forward", &[(1, x), (3, &y)], &[len as u32, 0, 0, 0], len);
                    y
                }
                Op::Mul => {
                    let y = self.output_buffer(&node.name, len);
                    let b = &acts[&node.inputs[1]];
                    let plane = in_shape.iter().product::<usize>() / bundle.shape_of(&node.inputs[1]).expect("validated").iter().product::<usize>();
                    self.dispatch(encoder, "mul_forward", &[(0, x), (1, b), (3, &y)], &[len as u32, plane as u32, 0, 0], len);
                    y
                }
                // Same data, same layout: share the buffer.
                Op::Flatten | Op::Dropout => x.clone(),
            };
            let y = match ablation.mask(&node.name, out_shape[0]) {
                Some(mask) => {
                    let mask = storage_buffer(&self.device, "ablation mask", &mask);
                    let masked = self.output_buffer(&node.name, len);
                    let params = [len as u32, out_shape[0] as u32, (len / batch / out_shape[0]) as u32, 0];
                    self.dispatch(encoder, "channel_scale", &[(0, &y), (1, &mask), (3, &masked)], &params, len);
                    masked
                }
                None => y,
            };
            acts.insert(node.name.clone(), y);
        }

        acts
    }

    pub(crate) fn output_buffer(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Records one kernel over `len` outputs; `params` is its uniform block (padded to 16 bytes).
    pub(crate) fn dispatch(&self, encoder: &mut wgpu::CommandEncoder, entry: &str, buffers: &[(u32, &wgpu::Buffer)], params: &[u32], len: usize) {
        let pipeline = &self.pipelines[entry];
        let mut padded = params.to_vec();
        padded.resize(params.len().div_ceil(4) * 4, 0);
        let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(entry),
            contents: bytemuck::cast_slice(&padded),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries: Vec<wgpu::BindGroupEntry> =
            buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry { binding: *binding, resource: b.as_entire_binding() }).collect();
        entries.push(wgpu::BindGroupEntry { binding: 4, resource: uniform.as_entire_binding() });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let groups = (len as u32).div_ceil(WORKGROUP).max(1);
        let x = groups.min(MAX_GROUPS_PER_DIM);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(entry), timestamp_writes: None });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, groups.div_ceil(x), 1);
    }

    /// Copies `(buffer, len)` pairs to the host after submitting `encoder`.
    pub(crate) async fn read_back(&self, mut encoder: wgpu::CommandEncoder, buffers: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
        let staging: Vec<(wgpu::Buffer, u64)> = buffers
            .iter()
            .map(|(buffer, len)| {
                let size = (len.max(&1) * 4) as u64;
                let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read back"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
                (staging, size)
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        let mut receivers = Vec::new();
        for (buffer, _) in &staging {
            let (tx, rx) = futures_channel::oneshot::channel();
            buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            receivers.push(rx);
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device failed: {e}")))?;
        let mut out = Vec::with_capacity(staging.len());
        for ((buffer, _), rx, ) in staging.iter().zip(receivers) {
            rx.await
                .map_err(|_| Error::Gpu("the device was lost before the result was read".into()))?
                .map_err(|e| Error::Gpu(format!("reading the result failed: {e}")))?;
            let view = buffer.slice(..).get_mapped_range().map_err(|e| Error::Gpu(format!("mapping the result failed: {e}")))?;
            out.push(bytemuck::cast_slice::<u8, f32>(&view).to_vec());
            drop(view);
            buffer.unmap();
        }
        for (values, (_, len)) in out.iter_mut().zip(buffers) {
            values.truncate(*len);
        }
        Ok(out)
    }

    /// Validation and out-of-memory error scopes around one call.
    pub(crate) fn error_scopes(&self) -> ErrorScopes {
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        ErrorScopes { oom, validation }
    }
}

/// The error scopes of one call; [`ErrorScopes::check`] turns what they caught into an [`Error`].
/// Fields drop in declaration order, and wgpu requires scopes to pop in reverse order of
/// pushing: `oom` (pushed last) must come first, or a call that fails before `check` (a lost
/// device) panics in wgpu instead of returning its error.
pub(crate) struct ErrorScopes {
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl ErrorScopes {
    pub(crate) async fn check(self, batch: usize) -> Result<()> {
        // Scopes pop in reverse order of pushing.
        if let Some(e) = self.oom.pop().await {
            return Err(Error::Gpu(format!("out of GPU memory for a batch of {batch}: {e}")));
        }
        if let Some(e) = self.validation.pop().await {
            return Err(Error::Gpu(e.to_string()));
        }
        Ok(())
    }
}

pub(crate) fn storage_buffer(device: &wgpu::Device, label: &str, data: &[f32]) -> wgpu::Buffer {
    // Zero-length buffers cannot be bound: give empty tensors one element.
    let contents: &[f32] = if data.is_empty() { &[0.0] } else { data };
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(contents),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}
