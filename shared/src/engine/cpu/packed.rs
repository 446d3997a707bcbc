//! A model's convolution weights packed for the matrix product ([`PackedA`]) once per engine,
//! on first use, and reused by every later call.
//!
//! Packing copies every weight into the micro-kernel's strips; for one image it costs about as
//! much as the product itself (a tenth of a CIFAR-size input gradient in the browser), and the
//! weights of a loaded model never change. The forward reads `W`, the input gradient `W^T`:
//! each (and their Winograd forms, for 3x3 convolutions) is packed the first time it is needed, so a forward-only page never holds the second.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::gemm::PackedA;
use super::layers::pack_conv_weights;
use super::winograd;
use crate::model::{Bundle, Op};

/// The packed weights of every convolution of one bundle, by node name.
#[derive(Debug, Default)]
pub struct PackedWeights {
    convs: HashMap<String, Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    forward: OnceLock<Vec<PackedA>>,
    backward: OnceLock<Vec<PackedA>>,
    winograd: OnceLock<Vec<PackedA>>,
    winograd_backward: OnceLock<Vec<PackedA>>,
}

impl PackedWeights {
    /// Empty slots for every [`Op::Conv2d`] of `bundle`.
    pub fn new(bundle: &Bundle) -> Self {
        let convs = bundle
            .spec()
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Conv2d { .. }))
            .map(|n| (n.name.clone(), Slots::default()))
            .collect();
        Self { convs }
    }

    /// The packed `W` of convolution `node` (weights `w`, `[out_channels, taps]` per group),
    /// packing it on the first call.
    pub fn forward(&self, node: &str, w: &[f32], out_channels: usize, taps: usize, groups: usize) -> &[PackedA] {
        self.slots(node).forward.get_or_init(|| pack_conv_weights(w, out_channels, taps, groups, false))
    }

    /// The packed `W^T` of convolution `node`, for its input gradient.
    pub fn backward(&self, node: &str, w: &[f32], out_channels: usize, taps: usize, groups: usize) -> &[PackedA] {
        self.slots(node).backward.get_or_init(|| pack_conv_weights(w, out_channels, taps, groups, true))
    }

    /// The 16 packed Winograd-domain filters of 3x3 convolution `node`, for
    /// [`winograd::forward`].
    pub fn winograd(&self, node: &str, w: &[f32], out_channels: usize, in_channels: usize) -> &[PackedA] {
        self.slots(node).winograd.get_or_init(|| winograd::pack_weights(w, out_channels, in_channels))
    }

    /// The 16 packed Winograd-domain filters of the input gradient of 3x3 convolution `node`,
    /// for [`winograd::backward`].
    pub fn winograd_backward(&self, node: &str, w: &[f32], out_channels: usize, in_channels: usize) -> &[PackedA] {
        self.slots(node).winograd_backward.get_or_init(|| winograd::pack_backward_weights(w, out_channels, in_channels))
    }

    fn slots(&self, node: &str) -> &Slots {
        self.convs.get(node).unwrap_or_else(|| panic!("`{node}` is not a convolution of this engine's bundle"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::engine::cpu::CpuEngine;
    use crate::engine::objective::Objective;
    use crate::testing::{fresh_seed, random_bundle, random_images, reference_cases, Rng};

    /// Weights packed by an earlier call, at another batch size, give the same bits as a
    /// fresh engine's: forward and input gradient of every reference case.
    #[test]
    fn reused_packs_give_the_fresh_engines_bits() {
        let seed = fresh_seed();
        let mut rng = Rng::new(seed);
        for (name, spec) in reference_cases() {
            let bundle = Arc::new(random_bundle(&mut rng, spec));
            let [c, h, w] = bundle.input_shape();
            let (three, one) = (random_images(&mut rng, [3, c, h, w]), random_images(&mut rng, [1, c, h, w]));
            let objective = Objective::CrossEntropy { target: 0 };
            let warm = CpuEngine::new(bundle.clone());
            warm.gradient(&three, &objective, &[]).unwrap();
            let reused = (warm.forward(&one).unwrap(), warm.gradient(&one, &objective, &[]).unwrap());
            let fresh = CpuEngine::new(bundle);
            let fresh = (fresh.forward(&one).unwrap(), fresh.gradient(&one, &objective, &[]).unwrap());
            assert_eq!(reused.0.data(), fresh.0.data(), "{name} (seed {seed}): forward");
            assert_eq!(reused.1.input.data(), fresh.1.input.data(), "{name} (seed {seed}): input gradient");
        }
    }
}
