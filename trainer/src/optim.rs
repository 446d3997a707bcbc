//! Adam, written out so that its state can be checkpointed and a resumed run continues exactly.
//!
//! The update is PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad):
//! `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
//! `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.

use std::collections::BTreeMap;

use tch::Tensor;

use crate::net::Net;

#[derive(Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken.
    pub t: u64,
    /// First and second moments by parameter name.
    pub m: BTreeMap<String, Tensor>,
    pub v: BTreeMap<String, Tensor>,
}

impl Adam {
    pub fn new(net: &Net, lr: f64) -> Self {
        let zeros = |net: &Net| net.trainable().into_iter().map(|(n, p)| (n.clone(), p.zeros_like())).collect();
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0, m: zeros(net), v: zeros(net) }
    }

    /// Zeroes the gradients, back-propagates `loss` and updates the parameters of `net`.
    pub fn backward_step(&mut self, net: &Net, loss: &Tensor) {
        Self::backward(net, loss);
        self.step(net);
    }

    /// Zeroes the gradients of `net` and back-propagates `loss` into them.
    pub fn backward(net: &Net, loss: &Tensor) {
        for (_, p) in net.trainable() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
    }

    /// Updates the parameters of `net` from their gradients.
    ///
    /// In place, as PyTorch's single-tensor Adam: one temporary (the denominator) per parameter
    /// instead of one per operation (the written-out form made a vgg step 5 ms slower).
    pub fn step(&mut self, net: &Net) {
        let params = net.trainable();
        self.t += 1;
        let t = self.t as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        let step_size = self.lr / bias1;
        tch::no_grad(|| {
            for (name, p) in params {
                let g = p.grad();
                if !g.defined() {
                    continue; // a parameter the loss does not reach
                }
                let m = self.m.get_mut(name).expect("moments exist for every trainable parameter");
                // m + (1 - b1) (g - m) = b1 m + (1 - b1) g
                let _ = m.lerp_(&g, 1.0 - self.beta1);
                let v = self.v.get_mut(name).expect("moments exist for every trainable parameter");
                let _ = v.g_mul_scalar_(self.beta2).addcmul_(&g, &(&g * (1.0 - self.beta2)));
                // p - step m / denom, as p + m / (denom / -step): tch's addcdiv_ has no scale.
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bias2.sqrt()).g_add_scalar_(self.eps).g_div_scalar_(-step_size);
                let mut p = p.shallow_clone();
                let _ = p.addcdiv_(&self.m[name], &denom);
            }
        });
    }
}
