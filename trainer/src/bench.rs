//! `advlens bench-step`: the time of one training step, for comparison with PyTorch
//! (`tests/bench/train-step.sh` runs both on the same graph and reports the ratio).

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use crate::mode::{step_loss, Mode};
use crate::net::Net;
use crate::optim::Adam;
use advlens_shared::model::ModelSpec;

/// Timings of `steps` training steps after `warmup` untimed ones.
#[derive(Debug, Serialize)]
pub struct StepTimes {
    pub mode: String,
    /// The networks' layout in memory (`contiguous` or `channels-last`).
    pub memory_format: String,
    pub batch_size: usize,
    pub steps: usize,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
}

/// Times training steps of `spec` under `mode` on random images and labels.
pub fn time_steps(spec: &ModelSpec, mode: &Mode, batch_size: usize, warmup: usize, steps: usize, device: Device) -> Result<StepTimes> {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let net = Net::new(&vs.root(), spec);
    mode.check(&net)?;
    let mut adam = Adam::new(&net, 1e-3);
    let (c, h, w) = (spec.input.channels as i64, spec.input.height as i64, spec.input.width as i64);
    let x = Tensor::rand([batch_size as i64, c, h, w], (Kind::Float, device));
    let y = Tensor::randint(spec.classes.len() as i64, [batch_size as i64], (Kind::Int64, device));
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let start = Instant::now();
        let out = step_loss(&net, mode, &x, &y);
        adam.backward_step(&net, &out.loss);
        let _ = out.loss.double_value(&[]); // waits for the device
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(StepTimes {
        mode: mode.name().into(),
        memory_format: net.memory_format().name().into(),
        batch_size,
        steps,
        median_ms: times[times.len() / 2],
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        min_ms: times[0],
    })
}
