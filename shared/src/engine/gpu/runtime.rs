//! The runtime: a [`Plan`] made real on the device — its buffers, one uniform buffer holding
//! every pass's parameters, a bind group per pass — created once per request and replayed on
//! every call of that shape, each stage in one compute pass and one submission.

use std::num::NonZeroU64;

use super::lower::{lower, Buf, Plan, Request};
use super::GpuEngine;
use crate::{Error, Result};

/// At most this many prepared plans stay on the device per engine (the explorer alternates
/// between a forward of one image, a gradient and a batch of attacks).
const CACHED_PLANS: usize = 3;
/// A plan whose buffers are larger than this is dropped after its call instead of kept.
const CACHED_BYTES: u64 = 256 << 20;

/// A plan with its device objects.
pub(crate) struct Prepared {
    pub request: Request,
    pub plan: Plan,
    pub buffers: Vec<wgpu::Buffer>,
    stages: Vec<Vec<Recorded>>,
    bytes: u64,
    // Bound by every recorded pass; kept alive with them.
    _uniforms: wgpu::Buffer,
}

struct Recorded {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
}

const MAX_GROUPS_PER_DIM: u32 = 65_535;

impl GpuEngine {
    /// The prepared plan of `request`: taken out of the cache (a call that runs meanwhile
    /// prepares its own, so no two calls share buffers), or made now.
    pub(crate) fn checkout(&self, request: Request) -> Prepared {
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        match cache.iter().position(|p| p.request == request) {
            Some(at) => cache.remove(at),
            None => {
                drop(cache);
                self.prepare(request)
            }
        }
    }

    /// Returns a plan after a successful call (most recent last; the oldest goes first).
    pub(crate) fn checkin(&self, prepared: Prepared) {
        if prepared.bytes > CACHED_BYTES {
            return;
        }
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        cache.push(prepared);
        if cache.len() > CACHED_PLANS {
            cache.remove(0);
        }
    }

    fn prepare(&self, request: Request) -> Prepared {
        let plan = lower(&self.bundle, &request);
        let buffers: Vec<wgpu::Buffer> = plan
            .values
            .iter()
            .map(|v| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&v.label),
                    size: (v.len.max(1) * 4) as u64,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let bytes = buffers.iter().map(wgpu::Buffer::size).sum();
        // Every pass's block at its own aligned offset of one buffer.
        let align = self.device.limits().min_uniform_buffer_offset_alignment as usize;
        let slot = |p: &[u8]| p.len().div_ceil(align) * align;
        let passes = plan.stages.iter().flatten();
        let mut blocks = vec![0u8; passes.clone().map(|p| slot(&p.params)).sum::<usize>().max(align)];
        let mut offsets = Vec::new();
        let mut at = 0;
        for pass in passes {
            blocks[at..at + pass.params.len()].copy_from_slice(&pass.params);
            offsets.push(at as u64);
            at += slot(&pass.params);
        }
        let uniforms = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel parameters"),
            size: blocks.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&uniforms, 0, &blocks);
        let mut offsets = offsets.into_iter();
        let stages = plan
            .stages
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .map(|pass| {
                        let pipeline = self.pipelines[pass.entry].clone();
                        let resolve = |buf: &Buf| match buf {
                            Buf::Weight(name) => &self.weights[name],
                            Buf::Stats => &self.stats,
                            Buf::InvStd => &self.inv_std,
                            Buf::Value(i) => &buffers[*i],
                        };
                        let mut entries: Vec<wgpu::BindGroupEntry> =
                            pass.bindings.iter().map(|(binding, buf)| wgpu::BindGroupEntry { binding: *binding, resource: resolve(buf).as_entire_binding() }).collect();
                        let params = wgpu::BufferBinding { buffer: &uniforms, offset: offsets.next().expect("one per pass"), size: NonZeroU64::new(pass.params.len() as u64) };
                        entries.push(wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::Buffer(params) });
                        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some(pass.entry),
                            layout: &pipeline.get_bind_group_layout(0),
                            entries: &entries,
                        });
                        let groups = pass.workgroups as u32;
                        let x = groups.min(MAX_GROUPS_PER_DIM);
                        Recorded { pipeline, bind_group, groups: (x, groups.div_ceil(x)) }
                    })
                    .collect()
            })
            .collect();
        Prepared { request, plan, buffers, stages, bytes, _uniforms: uniforms }
    }

    /// Records stage `stage` of `prepared` as one compute pass (WebGPU orders the dispatches
    /// of a pass: each sees the writes of the ones before it).
    pub(crate) fn encode_stage(&self, encoder: &mut wgpu::CommandEncoder, prepared: &Prepared, stage: usize) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("advlens"), timestamp_writes: None });
        for r in &prepared.stages[stage] {
            pass.set_pipeline(&r.pipeline);
            pass.set_bind_group(0, &r.bind_group, &[]);
            pass.dispatch_workgroups(r.groups.0, r.groups.1, 1);
        }
    }

    /// Uploads `data` into value `value` of `prepared` before the next submission.
    pub(crate) fn write(&self, prepared: &Prepared, value: usize, data: &[f32]) {
        if !data.is_empty() {
            self.queue.write_buffer(&prepared.buffers[value], 0, bytemuck::cast_slice(data));
        }
    }

    /// Submits `encoder` after copying `(value, len)` pairs of `prepared` to fresh staging
    /// buffers, and returns their contents.
    pub(crate) async fn read_back(&self, prepared: &Prepared, mut encoder: wgpu::CommandEncoder, values: &[(usize, usize)]) -> Result<Vec<Vec<f32>>> {
        let staging: Vec<wgpu::Buffer> = values
            .iter()
            .map(|&(value, len)| {
                let size = (len.max(1) * 4) as u64;
                let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read back"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(&prepared.buffers[value], 0, &staging, 0, size);
                staging
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        let mut receivers = Vec::new();
        for buffer in &staging {
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
        for ((buffer, rx), &(_, len)) in staging.iter().zip(receivers).zip(values) {
            rx.await
                .map_err(|_| Error::Gpu("the device was lost before the result was read".into()))?
                .map_err(|e| Error::Gpu(format!("reading the result failed: {e}")))?;
            let view = buffer.slice(..).get_mapped_range().map_err(|e| Error::Gpu(format!("mapping the result failed: {e}")))?;
            let mut data = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
            drop(view);
            buffer.unmap();
            data.truncate(len);
            out.push(data);
        }
        Ok(out)
    }
}
