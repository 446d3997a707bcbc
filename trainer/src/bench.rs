//! `advlens bench-step`: the time of one training step, for comparison with PyTorch
//! (`tests/bench/train-step.sh` runs both on the same graph and reports the ratio).

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use crate::mode::{step_loss, Mode};
use crate::net::Net;
use crate::optim::Adam;
use crate::precision::Precision;
use advlens_shared::model::{ModelSpec, Op};

/// Timings of `steps` training steps after `warmup` untimed ones.
#[derive(Debug, Serialize)]
pub struct StepTimes {
    pub mode: String,
    /// The networks' layout in memory (`contiguous` or `channels-last`).
    pub memory_format: String,
    /// The type the products ran in (`f32` or `bf16`).
    pub precision: String,
    pub batch_size: usize,
    pub steps: usize,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    /// The step's model FLOPs ([`step_flops`]): with the median time, the achieved rate that
    /// model FLOP utilisation divides by the device's peak.
    pub model_flops: f64,
}

/// Multiply-adds of one image's forward pass through the convolutions, transposed
/// convolutions and dense layers (the ops that dominate; elementwise ops, pools and norms are
/// left out, as model-FLOP counts do), read from the layers' output shapes.
pub fn forward_macs(net: &Net) -> f64 {
    let spec = net.spec();
    let [c, h, w] = [spec.input.channels, spec.input.height, spec.input.width].map(|d| d as i64);
    let x = Tensor::zeros([1, c, h, w], (Kind::Float, net.tensors().values().next().map_or(Device::Cpu, |t| t.device())));
    let acts = tch::no_grad(|| net.forward_all_t(&x, false));
    let numel = |name: &str| acts[name].numel() as f64;
    spec.nodes
        .iter()
        .map(|node| {
            let weight = || net.tensors()[&format!("{}.weight", node.name)].size();
            match node.op {
                // Each output value: in_channels / groups x k x k products.
                Op::Conv2d { .. } => numel(&node.name) * weight()[1..].iter().product::<i64>() as f64,
                // Each input value is spread over out_channels / groups x k x k outputs.
                Op::ConvTranspose2d { .. } => numel(&node.inputs[0]) * weight()[1..].iter().product::<i64>() as f64,
                Op::Linear { .. } => numel(&node.name) * weight()[1] as f64,
                _ => 0.0,
            }
        })
        .sum()
}

/// Model FLOPs of one training step of `batch` images under `mode`, as 2 x multiply-adds: a
/// forward pass is F = 2 x [`forward_macs`] per image, its backward 2F (input and weight
/// gradients); an attack step is a forward and an input gradient, counted 2F (the first
/// layer's input gradient and the weight gradients it skips are not worth separating); the
/// consistent loss and TRADES train on the clean and adversarial images together (2 x batch).
pub fn step_flops(net: &Net, mode: &Mode, batch: usize) -> f64 {
    let f = 2.0 * forward_macs(net) * batch as f64;
    let attack = |steps: usize| steps as f64 * 2.0 * f;
    match mode {
        Mode::Standard => 3.0 * f,
        Mode::Pgd { attack: a } => attack(a.steps) + 3.0 * f,
        Mode::Trades { attack: a, .. } => f + attack(a.steps) + 6.0 * f,
        Mode::Consistent { attack: a, .. } => attack(a.steps) + 6.0 * f,
    }
}

/// Times training steps of `spec` under `mode` on random images and labels.
pub fn time_steps(
    spec: &ModelSpec,
    mode: &Mode,
    precision: Precision,
    batch_size: usize,
    warmup: usize,
    steps: usize,
    device: Device,
) -> Result<StepTimes> {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let net = Net::new(&vs.root(), spec).with_precision(precision);
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
        precision: precision.name().into(),
        batch_size,
        steps,
        median_ms: times[times.len() / 2],
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        min_ms: times[0],
        model_flops: step_flops(&net, mode, batch_size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use advlens_shared::model::InputSpec;

    /// The multiply-adds of a small-cnn (width 8) written out by hand from its layers.
    #[test]
    fn forward_macs_count_the_products_of_each_layer() {
        let input = InputSpec { channels: 1, height: 28, width: 28, mean: vec![0.5], std: vec![0.25] };
        let classes: Vec<String> = (0..10).map(|k| format!("c{k}")).collect();
        let spec = crate::arch::build("small-cnn", "t", input, classes, 8).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), &spec);
        let conv1 = 28.0 * 28.0 * 8.0 * (1.0 * 3.0 * 3.0); // same padding, 8 maps of 28 x 28
        let conv2 = 14.0 * 14.0 * 16.0 * (8.0 * 3.0 * 3.0); // after a 2x2 pool
        let fc = (16.0 * 7.0 * 7.0) * 10.0;
        assert_eq!(forward_macs(&net), conv1 + conv2 + fc);
        assert_eq!(step_flops(&net, &Mode::Standard, 64), 3.0 * 2.0 * (conv1 + conv2 + fc) * 64.0);
    }
}
