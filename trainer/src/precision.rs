//! The number format of a network's matrix products during training: f32 throughout, or
//! bf16 products with f32 weights (mixed precision, PyTorch's `torch.autocast(dtype=bfloat16)`).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How a [`crate::net::Net`] computes its convolutions and dense layers.
///
/// `Bf16` follows autocast's rule: the inputs, weights and biases of convolutions, transposed
/// convolutions and dense layers are cast to bfloat16 and those ops run in it; every other op
/// runs in the type it is given (batch norm, layer norm and instance norm take bf16 activations
/// with their f32 weights and statistics, as libtorch's mixed kernels allow); the logits and the
/// consistent loss's features are cast back to f32 before any loss. The weights, their gradients
/// and Adam's moments stay f32 (the casts are differentiable, so gradients reach the f32
/// weights), and so do the input images and their gradients (attacks step in f32). Unlike
/// float16, bf16 has f32's exponent range, so no loss scaling is needed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    /// `f32` or `bf16`.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            other => anyhow::bail!("unknown precision `{other}`: use f32 or bf16 (bf16 products with f32 weights, as torch.autocast)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }

    /// `t` in the type products run in: bf16 for f32 tensors under `Bf16`, else `t` itself.
    pub fn for_product(self, t: &Tensor) -> Tensor {
        match self {
            Self::Bf16 if t.kind() == Kind::Float => t.to_kind(Kind::BFloat16),
            _ => t.shallow_clone(),
        }
    }

    /// `t` as f32, for losses (a no-op for f32 tensors).
    pub fn for_loss(t: &Tensor) -> Tensor {
        if t.kind() == Kind::Float {
            t.shallow_clone()
        } else {
            t.to_kind(Kind::Float)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{Attack, AttackKind, Norm};
    use crate::mode::{step_loss, Mode};
    use crate::net::{MemoryFormat, Net};
    use advlens_shared::model::InputSpec;
    use tch::{nn, Device};

    #[test]
    fn names_parse_and_print_back() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(Precision::parse(p.name()).unwrap(), p);
        }
        let err = Precision::parse("fp16").unwrap_err().to_string();
        assert!(err.contains("use f32 or bf16"), "{err}");
    }

    /// Two networks with the same weights, in f32 and in bf16 products, channels-last.
    fn twin_nets(spec: &advlens_shared::model::ModelSpec) -> (nn::VarStore, Net, nn::VarStore, Net) {
        let f32_vs = nn::VarStore::new(Device::Cpu);
        let f32_net = Net::with_format(&f32_vs.root(), spec, MemoryFormat::ChannelsLast);
        let mut bf16_vs = nn::VarStore::new(Device::Cpu);
        let bf16_net = Net::with_format(&bf16_vs.root(), spec, MemoryFormat::ChannelsLast).with_precision(Precision::Bf16);
        // The same weights by copy (other tests draw from libtorch's global generator too).
        bf16_vs.copy(&f32_vs).unwrap();
        (f32_vs, f32_net, bf16_vs, bf16_net)
    }

    fn spec(arch: &str, channels: usize) -> advlens_shared::model::ModelSpec {
        let classes: Vec<String> = (0..10).map(|k| format!("c{k}")).collect();
        let input = InputSpec { channels, height: 28, width: 28, mean: vec![0.5; channels], std: vec![0.25; channels] };
        crate::arch::build(arch, "t", input, classes, 8).unwrap()
    }

    /// `|a - b| / |a|` over whole tensors.
    fn distance(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).norm().double_value(&[]) / a.norm().double_value(&[]).max(1e-12)
    }

    /// bf16 products are f32's network to bf16's rounding (8 bits of mantissa, ~0.4% per
    /// value): from the same weights the logits agree within 3% of their scale, and not exactly
    /// (the products did run in bf16); the input gradient and the weight gradients of a
    /// small-cnn step agree as vectors (bf16 gradients are noisy entry by entry: PyTorch's
    /// autocast gives 0.4-9% in L2 on this net). The logits, every gradient and the master
    /// weights stay f32, and the consistent loss (features cast back) is f32's within 3%.
    #[test]
    fn bf16_networks_compute_f32_ones_to_bf16_rounding() {
        tch::set_num_threads(1);
        for (arch, c, layer) in [("small-cnn", 1usize, "relu2"), ("resnet", 3, "block3_out")] {
            let spec = spec(arch, c);
            let (_f32_vs, f32_net, _bf16_vs, bf16_net) = twin_nets(&spec);
            let x = Tensor::rand([4, c as i64, 28, 28], (Kind::Float, Device::Cpu));
            let y = Tensor::from_slice(&[1i64, 4, 7, 9]);
            let gradients = |net: &Net| {
                let xr = x.detach().set_requires_grad(true);
                let logits = net.forward_t(&xr, false);
                logits.cross_entropy_for_logits(&y).backward();
                let grads: Vec<(String, Tensor)> = net.trainable().into_iter().map(|(n, p)| (n.clone(), p.grad().copy())).collect();
                (logits.detach(), xr.grad(), grads)
            };
            let (logits, dx, grads) = gradients(&f32_net);
            let (low_logits, low_dx, low_grads) = gradients(&bf16_net);
            assert_eq!((low_logits.kind(), low_dx.kind()), (Kind::Float, Kind::Float), "{arch}: logits and input gradients are f32");
            let scale = logits.abs().max().double_value(&[]);
            let logit_diff = (&logits - &low_logits).abs().max().double_value(&[]) / scale;
            assert!(logit_diff > 0.0 && logit_diff < 0.03, "{arch}: bf16 logits differ by {logit_diff} of their scale");
            for ((name, a), (_, b)) in grads.iter().zip(&low_grads) {
                assert_eq!(b.kind(), Kind::Float, "{arch}: the gradient of {name} is not f32");
                if arch == "small-cnn" {
                    let diff = distance(a, b);
                    assert!(diff < 0.2, "{arch} gradient of {name}: bf16 differs by {diff} in L2");
                }
            }
            if arch == "small-cnn" {
                let dx_diff = distance(&dx, &low_dx);
                assert!(dx_diff < 0.2, "{arch}: bf16 input gradient differs by {dx_diff} in L2");
            }
            let attack = Attack { kind: AttackKind::Pgd, norm: Norm::Linf, epsilon: 0.1, step_size: 0.02, steps: 2, random_start: false };
            let mode = Mode::Consistent { lambda: 1.0, feature_layer: layer.into(), attack, distance: Default::default() };
            let (loss, low_loss) = (step_loss(&f32_net, &mode, &x, &y).loss, step_loss(&bf16_net, &mode, &x, &y).loss);
            assert_eq!(low_loss.kind(), Kind::Float);
            let (loss, low_loss) = (loss.double_value(&[]), low_loss.double_value(&[]));
            assert!((loss - low_loss).abs() < 0.03 * loss.abs(), "{arch}: consistent loss {loss} in f32, {low_loss} in bf16");
            for (name, t) in bf16_net.tensors() {
                assert_eq!(t.kind(), Kind::Float, "{arch}: weight {name} is not kept in f32");
            }
        }
    }

    /// Where single gradients are too noisy to compare (a resnet's batch norms at
    /// initialisation: PyTorch's autocast is 25-67% from f32 in L2 on this step), what the
    /// gradients are for must still hold: Adam with bf16 products fits one batch under the
    /// consistent loss as f32 does.
    #[test]
    fn bf16_training_fits_a_batch_as_f32_does() {
        tch::set_num_threads(1);
        let spec = spec("resnet", 3);
        let (_f32_vs, f32_net, _bf16_vs, bf16_net) = twin_nets(&spec);
        let x = Tensor::rand([8, 3, 28, 28], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7]);
        let attack = Attack { kind: AttackKind::Pgd, norm: Norm::Linf, epsilon: 0.02, step_size: 0.01, steps: 2, random_start: false };
        let mode = Mode::Consistent { lambda: 1.0, feature_layer: "block3_out".into(), attack, distance: Default::default() };
        let fit = |net: &Net| {
            let mut adam = crate::optim::Adam::new(net, 1e-2);
            let mut losses = Vec::new();
            for _ in 0..30 {
                let out = step_loss(net, &mode, &x, &y);
                losses.push(out.loss.double_value(&[]));
                adam.backward_step(net, &out.loss);
            }
            losses
        };
        let (full, low) = (fit(&f32_net), fit(&bf16_net));
        let (first, last) = (low[0], low[low.len() - 1]);
        assert!(last < 0.25 * first, "bf16: the consistent loss went from {first} to {last} in 30 steps (f32: {} to {})", full[0], full[full.len() - 1]);
        assert!(full[full.len() - 1] < 0.25 * full[0], "f32 did not fit the batch either: {full:?}");
    }
}
