//! The CPU engine's input gradients against central finite differences.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::engine::Objective;
use advlens_shared::testing::{fresh_seed, random_bundle, random_images, reference_cases, Rng};

#[test]
fn input_gradients_match_finite_differences() {
    let seed = fresh_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    for (name, spec) in reference_cases() {
        let conv = spec.nodes.iter().find(|n| n.inputs[0] == "input").unwrap().name.clone();
        let classes = spec.classes.len();
        let engine = CpuEngine::new(Arc::new(random_bundle(&mut rng, spec)));
        let [c, h, w] = engine.bundle().input_shape();
        let x = random_images(&mut rng, [1, c, h, w]);
        for objective in [
            Objective::Logit { class: classes / 2 },
            Objective::CrossEntropy { target: 0 },
            Objective::ChannelSum { node: conv.clone(), channel: 0 },
        ] {
            let grad = engine.gradient(&x, &objective, &[]).unwrap();
            let value = |x: &advlens_shared::Tensor| f64::from(engine.gradient(x, &objective, &[]).unwrap().values[0]);
            let eps = 1e-3f32;
            let mut mismatches = Vec::new();
            for _ in 0..12 {
                let i = (rng.next_u64() % x.len() as u64) as usize;
                let (mut plus, mut minus) = (x.clone(), x.clone());
                plus.data_mut()[i] += eps;
                minus.data_mut()[i] -= eps;
                let (vp, vm) = (value(&plus), value(&minus));
                let fd = (vp - vm) / (2.0 * f64::from(eps));
                let an = f64::from(grad.input.data()[i]);
                // The values are f32 sums: a few units in the last place of each (an f32 ulp is
                // |v| * 2^-23) pass into the difference divided by 2 eps — 0.03 for a channel sum of
                // 500, more than the relative tolerance alone allows.
                let rounding = 4.0 * vp.abs().max(vm.abs()) * f64::from(f32::EPSILON) / (2.0 * f64::from(eps));
                if (fd - an).abs() > 2e-2 * an.abs().max(1.0) + rounding {
                    mismatches.push(format!("pixel {i}: finite difference {fd:.5}, gradient {an:.5}"));
                }
            }
            // A step can cross a ReLU or max-pool kink and change the active piece: allow one.
            assert!(mismatches.len() <= 1, "{name}, {objective:?}, seed {seed}: {mismatches:#?}");
        }
    }
}
