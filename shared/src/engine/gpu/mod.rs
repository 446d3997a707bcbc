//! The WebGPU engine: the same layers as [`crate::engine::cpu::layers`], as WGSL compute
//! kernels, run through wgpu.
//!
//! Natively it runs on any Vulkan/Metal/DX12 adapter (lavapipe in the tests); in the browser
//! on WebGPU. Every failure becomes an [`Error`] so that the caller can fall back to the CPU.
//!
//! - [`context`]: the device, its loss, and the error scopes of a call;
//! - [`kernels`]: the WGSL kernels and their typed parameter blocks;
//! - [`lower`]: a model and a request to a plan of buffers and passes, without a device;
//! - `runtime`: plans made real (buffers, uniforms, bind groups) once per request, and replayed.

pub mod context;
pub mod kernels;
pub mod lower;
mod runtime;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

pub use self::context::{request_device, DeviceLost, GpuContext};
pub use self::kernels::KERNELS;
use self::context::error_scopes;
use self::lower::Request;
use self::runtime::Prepared;
use crate::engine::cpu::check_input;
use crate::engine::cpu::layers::batch_norm_fold as fold_batch_norm;
use crate::engine::objective::{Ablation, Gradient, Objective};
use crate::model::{Bundle, Op, INPUT_NAME};
use crate::{Error, Result, Tensor};

pub use wgpu;

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
    /// `1 / std` of each input channel (the input gradient's last step).
    inv_std: wgpu::Buffer,
    /// Prepared plans of recent requests (see `runtime`).
    plans: Mutex<Vec<Prepared>>,
    lost: DeviceLost,
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine").field("adapter", &self.adapter.name).finish_non_exhaustive()
    }
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
        for &(entry, source) in KERNELS {
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
        let inv_std: Vec<f32> = spec.std.iter().map(|s| 1.0 / s).collect();
        let inv_std = storage_buffer(&device, "1/std", &inv_std);
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!("setting up the model failed: {e}")));
        }
        Ok(Self { bundle, device, queue, adapter, pipelines, weights, stats, inv_std, plans: Mutex::default(), lost })
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
        self.forward_ablated(input, &Ablation::default()).await
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
        let masks: Vec<(String, Vec<f32>)> = bundle
            .spec()
            .nodes
            .iter()
            .filter_map(|node| ablation.mask(&node.name, bundle.shape_of(&node.name).expect("validated")[0]).map(|m| (node.name.clone(), m)))
            .collect();
        let scopes = error_scopes(&self.device);
        let prepared = self.checkout(Request::Forward { batch, masked: masks.iter().map(|(name, _)| name.clone()).collect() });
        self.write(&prepared, prepared.plan.image, input.data());
        for ((_, mask), (_, value)) in masks.iter().zip(&prepared.plan.masks) {
            self.write(&prepared, *value, mask);
        }
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_stage(&mut encoder, &prepared, 0);
        let reads: Vec<(usize, usize)> = names.iter().zip(&shapes).map(|(name, shape)| (prepared.plan.acts[*name], shape.iter().product())).collect();
        let values = self.read_back(&prepared, encoder, &reads).await?;
        scopes.check(batch).await?;
        self.checkin(prepared);
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

    /// The gradient of `objective` with respect to the input image and to the activations of the
    /// nodes in `wrt`; equal to [`crate::engine::cpu::CpuEngine::gradient`] up to rounding.
    ///
    /// Two submissions: the forward pass, after which the host computes the objective's seed
    /// from the (small) activation it reads, then the backward pass.
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
        let with_batch = |name: &str| [&[batch][..], bundle.shape_of(name).expect("checked")].concat();
        let scopes = error_scopes(&self.device);
        let wrt_names: Vec<String> = wrt.iter().map(|n| n.to_string()).collect();
        objective.check(bundle.shape_of(&target).expect("checked"))?;
        let prepared = self.checkout(Request::Gradient { batch, target: target.clone(), wrt: wrt_names, objective: objective.code() });
        let plan = &prepared.plan;
        let grad = plan.gradient.as_ref().expect("a gradient request plans its gradient");

        // Forward, the objective's seed and the backward pass: one submission, one read-back.
        self.write(&prepared, plan.image, input.data());
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_stage(&mut encoder, &prepared, 0);
        self.encode_stage(&mut encoder, &prepared, 1);
        let mut reads = vec![(grad.values, batch), (grad.d_image, input.len())];
        reads.extend(grad.kept.iter().map(|(name, value)| (*value, with_batch(name).iter().product())));
        let mut out = self.read_back(&prepared, encoder, &reads).await?.into_iter();
        scopes.check(batch).await?;

        let values = out.next().expect("one per read");
        let input_grad = Tensor::new(input.shape().to_vec(), out.next().expect("one per read"))?;
        let mut activations = HashMap::new();
        for ((name, _), data) in grad.kept.iter().zip(out) {
            activations.insert(name.clone(), Tensor::new(with_batch(name), data)?);
        }
        // Nodes after the objective's node get no gradient.
        for name in wrt {
            if !activations.contains_key(*name) {
                activations.insert(name.to_string(), Tensor::zeros(with_batch(name)));
            }
        }
        self.checkin(prepared);
        Ok(Gradient { values, input: input_grad, activations })
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
