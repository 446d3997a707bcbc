//! The shared crate's single-image attacks (what the explorer runs) against the trainer's
//! batched libtorch attacks: same model, same image, same budget -> same adversarial image.

use advlens_shared::attack::{attack, AttackKind, AttackSpec, Norm};
use advlens_shared::engine::Engine;
use advlens_shared::testing::{fresh_seed, random_images, reference_cases, Rng};
use advlens_trainer::attack as tch_attack;
use advlens_trainer::net::Net;
use tch::Kind;

mod common;
use common::twins;

#[test]
fn shared_attacks_match_libtorch_attacks() {
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    for (name, spec) in reference_cases() {
        let (bundle, _vs, net) = twins(&mut rng, spec.clone());
        let engine = Engine::cpu(bundle);
        let (c, h, w) = (spec.input.channels, spec.input.height, spec.input.width);
        let x = random_images(&mut rng, [1, c, h, w]);
        let xt = tch::Tensor::from_slice(x.data()).view([1, c as i64, h as i64, w as i64]);
        let label = 1usize;
        let yt = tch::Tensor::from_slice(&[label as i64]);
        for (kind, tkind, norm, tnorm, eps) in [
            (AttackKind::Fgsm, tch_attack::AttackKind::Fgsm, Norm::Linf, tch_attack::Norm::Linf, 0.05),
            (AttackKind::Pgd, tch_attack::AttackKind::Pgd, Norm::Linf, tch_attack::Norm::Linf, 0.05),
            (AttackKind::LeastLikely, tch_attack::AttackKind::LeastLikely, Norm::Linf, tch_attack::Norm::Linf, 0.05),
            (AttackKind::Pgd, tch_attack::AttackKind::Pgd, Norm::L2, tch_attack::Norm::L2, 1.0),
        ] {
            let steps = 5;
            let ours = AttackSpec { kind, norm, epsilon: eps as f32, step_size: eps as f32 / 3.0, steps, target: None, random_start: None };
            let theirs = tch_attack::Attack { kind: tkind, norm: tnorm, epsilon: eps, step_size: eps / 3.0, steps, random_start: false };
            let a = pollster::block_on(attack(&engine, &x, label, &ours)).unwrap();
            let b = Vec::<f32>::try_from(theirs.perturb(&net, &xt, &yt).flatten(0, -1).to_kind(Kind::Float)).unwrap();
            // A gradient component within rounding of zero may take another sign in the other
            // implementation; allow a handful of such pixels, and no other difference.
            let differing = a.image.data().iter().zip(&b).filter(|(p, q)| (*p - *q).abs() > 1e-4).count();
            assert!(
                differing * 200 <= b.len(),
                "seed {seed}, {name}, {kind:?} {norm:?}: {differing} of {} pixels differ",
                b.len()
            );
        }
    }
}

/// The paper's ensemble attack: the shared single-image version and the trainer's batched
/// libtorch version reach the same image from the same start (Adam on the same loss).
#[test]
fn shared_ensemble_attack_matches_libtorch() {
    use advlens_shared::attack::{ensemble_attack, EnsembleSpec};
    use advlens_trainer::adversarial_set::{ensemble_attack as tch_ensemble, ensemble_loss, EnsembleConfig};
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    let spec = reference_cases()[1].1.clone(); // 3x32x32
    let mut engines = Vec::new();
    let mut nets = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..3 {
        let (bundle, vs, net) = twins(&mut rng, spec.clone());
        engines.push(Engine::cpu(bundle));
        nets.push(net);
        stores.push(vs);
    }
    let x = random_images(&mut rng, [1, 3, 32, 32]);
    let xt = tch::Tensor::from_slice(x.data()).view([1, 3, 32, 32]);
    let target = 4usize;
    let ours = EnsembleSpec { target, weights: vec![1.0, 2.0, 1.0], lambda: 0.5, steps: 12, learning_rate: 0.01, box_epsilon: Some(0.06) };
    let theirs = EnsembleConfig { weights: vec![1.0, 2.0, 1.0], lambda: 0.5, steps: 12, learning_rate: 0.01, box_epsilon: Some(0.06) };
    let refs: Vec<&Engine> = engines.iter().collect();
    let net_refs: Vec<&Net> = nets.iter().collect();
    let a = pollster::block_on(ensemble_attack(&refs, &x, &ours)).unwrap();
    let t = tch::Tensor::from_slice(&[target as i64]);
    let b = tch_ensemble(&net_refs, &xt, &t, &theirs);
    let bv = Vec::<f32>::try_from(b.flatten(0, -1)).unwrap();
    let worst = a.image.data().iter().zip(&bv).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(worst < 2e-3, "seed {seed}: images differ by up to {worst}");
    let loss = ensemble_loss(&net_refs, &theirs.weights, &b, &xt, &t, theirs.lambda).double_value(&[0]) as f32;
    let last = *a.losses.last().unwrap();
    assert!((loss - last).abs() < 1e-3 * (1.0 + last.abs()), "seed {seed}: final loss {last} vs libtorch {loss}");
    assert!(last < a.losses[0], "seed {seed}: the attack did not lower its loss");
}

/// Tracing scores: the shared engine's gradient x activation per channel equals libtorch's
/// autograd on the same model and image.
#[test]
fn shared_tracing_matches_libtorch() {
    use advlens_shared::analysis::trace::trace;
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    for (name, spec, layer) in [(0usize, "relu4"), (4, "block_relu")].map(|(i, l)| (reference_cases()[i].0, reference_cases()[i].1.clone(), l)) {
        let (bundle, _vs, net) = twins(&mut rng, spec.clone());
        let engine = Engine::cpu(bundle);
        let (c, h, w) = (spec.input.channels, spec.input.height, spec.input.width);
        let x = random_images(&mut rng, [1, c, h, w]);
        let class = 2;
        let ours = pollster::block_on(trace(&engine, &x, class, layer)).unwrap();
        let xt = tch::Tensor::from_slice(x.data()).view([1, c as i64, h as i64, w as i64]);
        let acts = net.forward_all_t(&xt, false);
        let a = &acts[layer];
        let logit = acts[&spec.output].select(1, class as i64).sum(Kind::Float);
        let g = tch::Tensor::run_backward(&[logit], &[a], false, false).pop().unwrap();
        let theirs = Vec::<f32>::try_from((a * g).sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Float)).unwrap();
        for inf in &ours {
            let t = theirs[inf.channel];
            assert!((inf.grad_x_act - t).abs() <= 1e-4 * (1.0 + t.abs()), "seed {seed}, {name}, channel {}: {} vs libtorch {t}", inf.channel, inf.grad_x_act);
        }
    }
}

/// The prediction difference behind claim 4's second ranking: libtorch's net with one channel
/// of a layer scaled to zero gives the logits the shared engine gives with that channel ablated.
#[test]
fn zeroing_a_channel_in_libtorch_matches_the_engines_ablation() {
    use advlens_shared::engine::Ablation;
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    let mut checked = 0;
    for (name, spec) in reference_cases() {
        // The last ReLU with feature maps (tracing's layer).
        let Some(layer) = spec.nodes.iter().rev().filter(|n| matches!(n.op, advlens_shared::model::Op::Relu)).map(|n| n.name.clone()).find(|l| spec_shape_is_maps(&spec, l)) else { continue };
        let (bundle, _vs, net) = twins(&mut rng, spec.clone());
        let [c, h, w] = bundle.input_shape();
        let x = random_images(&mut rng, [2, c, h, w]);
        let engine = Engine::cpu(bundle.clone());
        let shape = bundle.shape_of(&layer).unwrap().to_vec();
        // A channel that fires on these images (a dead one, all zeros after its ReLU, would
        // change nothing when silenced: that made this test fail on some fresh seeds).
        let maps = pollster::block_on(engine.activations(&x, &[&layer])).unwrap().remove(&layer).unwrap();
        let plane = maps.len() / (2 * shape[0]);
        let energy = |ch: usize| (0..2).map(|n| maps.data()[(n * shape[0] + ch) * plane..][..plane].iter().sum::<f32>()).sum::<f32>();
        let k = (0..shape[0]).max_by(|&a, &b| energy(a).total_cmp(&energy(b))).unwrap();
        let theirs = pollster::block_on(engine.forward_ablated(&x, &Ablation::default().zero(&layer, k))).unwrap();
        let scale = tch::Tensor::ones([1, shape[0] as i64, 1, 1], (Kind::Float, tch::Device::Cpu)).index_fill(1, &tch::Tensor::from_slice(&[k as i64]), 0.0);
        let xt = tch::Tensor::from_slice(x.data()).view([2, c as i64, h as i64, w as i64]);
        let ours = Vec::<f32>::try_from(net.forward_with_layer_scaled(&xt, &layer, &scale).flatten(0, -1)).unwrap();
        let worst = ours.iter().zip(theirs.data()).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{name} {layer}[{k}], seed {seed}: logits differ by {worst}");
        let plain = pollster::block_on(engine.forward(&x)).unwrap();
        assert!(plain.data().iter().zip(theirs.data()).any(|(a, b)| (a - b).abs() > 1e-6), "{name}: silencing {layer}[{k}] changed nothing");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} reference cases have a ReLU with feature maps");
}

fn spec_shape_is_maps(spec: &advlens_shared::model::ModelSpec, layer: &str) -> bool {
    advlens_shared::model::check_spec(spec).is_ok_and(|shapes| shapes.get(layer).is_some_and(|s| s.len() == 3))
}
