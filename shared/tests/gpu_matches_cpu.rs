//! The WebGPU engine against the CPU reference on random models and fresh random inputs.
//!
//! Natively this runs on whatever adapter wgpu finds (lavapipe on CI). Without an adapter the
//! test says that it skipped; ADVLENS_REQUIRE_GPU=1 turns that into a failure.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use advlens_shared::engine::{cpu::CpuEngine, gpu, Ablation, Objective};
use advlens_shared::testing::{fresh_seed, max_rel_diff, max_scaled_diff, random_bundle, random_images, reference_cases, Rng};

/// A device on the default adapter; without one, `None` after saying that `test` skipped (a
/// failure instead with ADVLENS_REQUIRE_GPU=1).
fn device_or_skip(test: &str) -> Option<gpu::GpuContext> {
    match pollster::block_on(gpu::request_device()) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("ADVLENS_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("SKIPPED {test}: {e} (set ADVLENS_REQUIRE_GPU=1 to fail instead)");
            None
        }
        Err(e) => panic!("ADVLENS_REQUIRE_GPU=1 but {e}"),
    }
}

#[test]
fn gpu_forward_equals_cpu_forward() {
    let Some(context) = device_or_skip("gpu_forward_equals_cpu_forward") else { return };
    let info = &context.adapter;
    eprintln!("adapter: {} ({:?}, {:?})", info.name, info.backend, info.device_type);
    let seed = fresh_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    for (name, spec) in reference_cases() {
        let bundle = Arc::new(random_bundle(&mut rng, spec));
        let [c, h, w] = bundle.input_shape();
        let gpu = pollster::block_on(gpu::GpuEngine::with_context(bundle.clone(), context.clone())).unwrap();
        let cpu = CpuEngine::new(bundle);
        for batch in [1, 5] {
            let x = random_images(&mut rng, [batch, c, h, w]);
            let want = cpu.forward(&x).unwrap();
            let got = pollster::block_on(gpu.forward(&x)).unwrap();
            assert_eq!(got.shape(), want.shape());
            let diff = max_rel_diff(got.data(), want.data());
            assert!(diff < 1e-4, "{name}, batch {batch}, seed {seed}: GPU differs from CPU by {diff}");
            assert!(want.data().iter().any(|v| v.abs() > 1e-3), "{name}: degenerate test, all logits near zero");
        }
        // Gradients: input and the first node's activation, for every kind of objective.
        let first = cpu.bundle().spec().nodes[0].name.clone();
        let classes = cpu.bundle().classes().len();
        let x = random_images(&mut rng, [3, c, h, w]);
        for objective in [
            Objective::Logit { class: classes - 1 },
            Objective::CrossEntropy { target: 1 },
            Objective::ChannelMax { node: first.clone(), channel: 0 },
            Objective::ChannelSum { node: first.clone(), channel: 1 },
        ] {
            let want = cpu.gradient(&x, &objective, &[&first]).unwrap();
            let got = pollster::block_on(gpu.gradient(&x, &objective, &[&first])).unwrap();
            let diff = max_scaled_diff(got.input.data(), want.input.data());
            assert!(diff < 1e-4, "{name}, {objective:?}, seed {seed}: GPU input gradient differs from CPU by {diff}");
            let (a, b) = (&got.activations[&first], &want.activations[&first]);
            assert!(max_scaled_diff(a.data(), b.data()) < 1e-4, "{name}, {objective:?}: gradient at {first}");
            assert_eq!(got.values.len(), 3);
            // The values come from the GPU's seed kernel, not the host.
            assert!(max_rel_diff(&got.values, &want.values) < 1e-4, "{name}, {objective:?}: values {:?} vs {:?}", got.values, want.values);
        }
        for wrong in [Objective::Logit { class: classes }, Objective::ChannelMax { node: first.clone(), channel: 9999 }] {
            let (want, got) = (cpu.gradient(&x, &wrong, &[]).unwrap_err().to_string(), pollster::block_on(gpu.gradient(&x, &wrong, &[])).unwrap_err().to_string());
            assert_eq!(got, want, "{name}: the same error on both engines");
        }
        // Intermediate activations and channel ablation.
        let all = cpu.forward_all(&x).unwrap();
        let got = pollster::block_on(gpu.forward_all(&x, &[&first, "input"], &Ablation::default())).unwrap();
        for name in [first.as_str(), "input"] {
            assert!(max_rel_diff(got[name].data(), all[name].data()) < 1e-4, "{name}: activation {name} differs");
        }
        let ablation = Ablation::default().zero(&first, 0).zero(&first, 1);
        let want = cpu.forward_ablated(&x, &ablation).unwrap();
        let got = pollster::block_on(gpu.forward_ablated(&x, &ablation)).unwrap();
        assert!(max_rel_diff(got.data(), want.data()) < 1e-4, "{name}: ablated forward differs");
        assert!(max_rel_diff(want.data(), cpu.forward(&x).unwrap().data()) > 1e-5, "{name}: ablation changed nothing");
        // The same masked node with other channels reuses the call's plan: its mask is new data.
        let other = Ablation::default().zero(&first, 1);
        let got = pollster::block_on(gpu.forward_ablated(&x, &other)).unwrap();
        assert!(max_rel_diff(got.data(), cpu.forward_ablated(&x, &other).unwrap().data()) < 1e-4, "{name}: a reused plan kept the old mask");
        assert!(pollster::block_on(gpu.forward_ablated(&x, &Ablation::default().zero(&first, 999))).is_err());

        // Finite differences on the GPU engine itself.
        let objective = Objective::Logit { class: 0 };
        let x1 = random_images(&mut rng, [1, c, h, w]);
        let grad = pollster::block_on(gpu.gradient(&x1, &objective, &[])).unwrap();
        let value = |x: &advlens_shared::Tensor| f64::from(pollster::block_on(gpu.gradient(x, &objective, &[])).unwrap().values[0]);
        let mut mismatches = 0;
        for _ in 0..8 {
            let i = (rng.next_u64() % x1.len() as u64) as usize;
            let (mut plus, mut minus) = (x1.clone(), x1.clone());
            plus.data_mut()[i] += 1e-3;
            minus.data_mut()[i] -= 1e-3;
            let fd = (value(&plus) - value(&minus)) / 2e-3;
            let an = f64::from(grad.input.data()[i]);
            mismatches += usize::from((fd - an).abs() > 2e-2 * an.abs().max(1.0));
        }
        // A step may cross a ReLU or max-pool kink: allow one.
        assert!(mismatches <= 1, "{name}, seed {seed}: {mismatches} of 8 finite differences disagree with the GPU gradient");

        // Wrong shapes are errors on the GPU too.
        assert!(pollster::block_on(gpu.forward(&random_images(&mut rng, [1, c, h + 1, w]))).is_err());
    }
}

/// A lost device (destroyed here) makes every later call an `Error::Gpu` — never a panic, which
/// is what lets the explorer move to the CPU engine in the middle of an attack.
#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let Some(context) = device_or_skip("a_lost_device_is_an_error_not_a_panic") else { return };
    let mut rng = Rng::new(fresh_seed());
    let (_, spec) = reference_cases().remove(0);
    let bundle = Arc::new(random_bundle(&mut rng, spec));
    let [c, h, w] = bundle.input_shape();
    let gpu = pollster::block_on(gpu::GpuEngine::with_context(bundle, context)).unwrap();
    let x = random_images(&mut rng, [1, c, h, w]);
    assert!(pollster::block_on(gpu.forward(&x)).is_ok());
    gpu.destroy_device();
    for _ in 0..2 {
        match pollster::block_on(gpu.forward(&x)) {
            Err(advlens_shared::Error::Gpu(_)) => {}
            other => panic!("a forward pass on a destroyed device gave {other:?}"),
        }
        match pollster::block_on(gpu.gradient(&x, &Objective::CrossEntropy { target: 0 }, &[])) {
            Err(advlens_shared::Error::Gpu(_)) => {}
            other => panic!("a gradient on a destroyed device gave {:?}", other.map(|g| g.values)),
        }
    }
}
