//! Gradients and ablations of the shared CPU engine against libtorch's autograd, on random
//! models of every layer type (residual DAG included) and fresh random inputs.

use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::engine::gpu::{self, GpuEngine};
use advlens_shared::engine::{Ablation, Objective};
use advlens_shared::model::{Bundle, Op};
use advlens_shared::testing::{fresh_seed, max_scaled_diff, random_images, random_weights, reference_cases, Rng};
use tch::{Device, Kind};

mod common;
use common::{to_tch, to_vec, twins};

/// The libtorch value of `objective`, summed over the batch, from the activations.
fn tch_objective(objective: &Objective, acts: &std::collections::HashMap<String, tch::Tensor>, output: &str) -> tch::Tensor {
    match objective {
        Objective::Logit { class } => acts[output].select(1, *class as i64).sum(Kind::Float),
        Objective::CrossEntropy { target } => {
            let logits = &acts[output];
            let targets = tch::Tensor::full([logits.size()[0]], *target as i64, (Kind::Int64, Device::Cpu));
            logits.cross_entropy_for_logits(&targets) * logits.size()[0] as f64
        }
        Objective::ChannelMax { node, channel } => {
            let a = acts[node].select(1, *channel as i64);
            a.flatten(1, -1).max_dim(1, false).0.sum(Kind::Float)
        }
        Objective::ChannelSum { node, channel } => acts[node].select(1, *channel as i64).sum(Kind::Float),
    }
}

/// Conv nodes of a spec (names), for channel objectives.
fn conv_nodes(spec: &advlens_shared::model::ModelSpec) -> Vec<String> {
    spec.nodes.iter().filter(|n| matches!(n.op, Op::Conv2d { .. })).map(|n| n.name.clone()).collect()
}

#[test]
fn input_and_activation_gradients_match_libtorch() {
    tch::set_num_threads(1);
    let seed = fresh_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let context = match pollster::block_on(gpu::request_device()) {
        Ok(c) => Some(c),
        Err(e) if std::env::var("ADVLENS_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("SKIPPED the WebGPU half: {e} (set ADVLENS_REQUIRE_GPU=1 to fail instead)");
            None
        }
        Err(e) => panic!("ADVLENS_REQUIRE_GPU=1 but {e}"),
    };
    for (name, spec) in reference_cases() {
        let convs = conv_nodes(&spec);
        let last_conv = convs.last().unwrap().clone();
        let classes = spec.classes.len();
        let output = spec.output.clone();
        let (bundle, _vs, net) = twins(&mut rng, spec);
        let engine = CpuEngine::new(bundle.clone());
        let gpu = context.as_ref().map(|c| pollster::block_on(GpuEngine::with_context(bundle.clone(), c.clone())).unwrap());
        let [c, h, w] = bundle.input_shape();
        // Five images: at four or more the dense layers run as matrix products (gemm), below as
        // dot products; both paths are covered between this test and the finite differences.
        let x = random_images(&mut rng, [5, c, h, w]);
        let objectives = [
            Objective::Logit { class: classes - 1 },
            Objective::CrossEntropy { target: 0 },
            Objective::ChannelMax { node: last_conv.clone(), channel: 1 },
            Objective::ChannelSum { node: convs[0].clone(), channel: 0 },
        ];
        for objective in &objectives {
            let ours = engine.gradient(&x, objective, &[&convs[0]]).unwrap();

            let xt = to_tch(&x).set_requires_grad(true);
            let acts = net.forward_all_t(&xt, false);
            let value = tch_objective(objective, &acts, &output);
            // autograd.grad: the gradients with respect to the input and the first conv.
            let grads = tch::Tensor::run_backward(&[&value], &[&xt, &acts[&convs[0]]], false, false);

            let what = format!("{name}, {objective:?}, seed {seed}");
            let v = ours.values.iter().sum::<f32>();
            let tv = value.double_value(&[]) as f32;
            assert!((v - tv).abs() <= 1e-4 * tv.abs().max(1.0), "{what}: value {v} vs libtorch {tv}");
            let d = max_scaled_diff(ours.input.data(), &to_vec(&grads[0]));
            assert!(d < 1e-4, "{what}: input gradient differs from libtorch by {d}");
            let d = max_scaled_diff(ours.activations[&convs[0]].data(), &to_vec(&grads[1]));
            assert!(d < 1e-4, "{what}: gradient at {} differs from libtorch by {d}", convs[0]);
            assert!(ours.input.data().iter().any(|g| g.abs() > 1e-6), "{what}: degenerate, zero gradient");
            if let Some(gpu) = &gpu {
                let theirs = pollster::block_on(gpu.gradient(&x, objective, &[&convs[0]])).unwrap();
                let d = max_scaled_diff(theirs.input.data(), &to_vec(&grads[0]));
                assert!(d < 1e-4, "{what}: WebGPU input gradient differs from libtorch by {d}");
                let d = max_scaled_diff(theirs.activations[&convs[0]].data(), &to_vec(&grads[1]));
                assert!(d < 1e-4, "{what}: WebGPU gradient at {} differs from libtorch by {d}", convs[0]);
            }
        }
    }
}

#[test]
fn ablating_a_channel_equals_zeroing_its_filter() {
    // Independent of the ablation code: a conv channel is zero when its filter and bias are.
    // Only conv nodes not followed by batch norm qualify (a batch norm would add its shift).
    let seed = fresh_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    for (name, spec) in reference_cases().into_iter().take(3) {
        let conv = conv_nodes(&spec).last().unwrap().clone();
        let mut weights = random_weights(&mut rng, &spec);
        let bundle = Arc::new(Bundle::new(spec.clone(), weights.clone()).unwrap());
        let [c, h, w] = bundle.input_shape();
        let x = random_images(&mut rng, [2, c, h, w]);
        let channels = bundle.shape_of(&conv).unwrap()[0];
        let engine = CpuEngine::new(bundle);
        // A channel that matters for these images (with random weights a given one can be dead
        // after its ReLU, or lose every max-pool window: channel 2 always was the choice, and
        // one run in many failed on it).
        let base = engine.forward(&x).unwrap();
        let (channel, ablated) = (0..channels)
            .map(|ch| (ch, engine.forward_ablated(&x, &Ablation::default().zero(&conv, ch)).unwrap()))
            .find(|(_, ablated)| max_scaled_diff(ablated.data(), base.data()) > 1e-4)
            .unwrap_or_else(|| panic!("{name}, seed {seed}: ablating any channel of {conv} changes nothing"));

        let filter = weights.get_mut(&format!("{conv}.weight")).unwrap();
        let per_channel = filter.len() / filter.shape()[0];
        filter.data_mut()[channel * per_channel..(channel + 1) * per_channel].fill(0.0);
        weights.get_mut(&format!("{conv}.bias")).unwrap().data_mut()[channel] = 0.0;
        let zeroed = CpuEngine::new(Arc::new(Bundle::new(spec, weights).unwrap())).forward(&x).unwrap();
        assert!(max_scaled_diff(ablated.data(), zeroed.data()) < 1e-6, "{name}, seed {seed}");
    }
}
