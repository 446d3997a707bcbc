//! Attacks, the ensemble attack and tracing on the CPU engine, against properties that must
//! hold (fresh random models and images each run; the seed is printed on failure).

use std::sync::Arc;

use advlens_shared::analysis::trace::trace;
use advlens_shared::attack::{attack, attack_observed, ensemble_attack, ensemble_observed, AttackChoice, AttackKind, AttackSpec, EnsembleSpec, Norm};
use advlens_shared::engine::{Ablation, Engine};
use advlens_shared::testing::{fresh_seed, random_bundle, random_images, reference_cases, Rng};
use advlens_shared::tensor::softmax;

fn engine(rng: &mut Rng, case: usize) -> Engine {
    Engine::cpu(Arc::new(random_bundle(rng, reference_cases()[case].1.clone())))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn every_attack_stays_in_its_ball_and_in_the_unit_box() {
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    let engine = engine(&mut rng, 0);
    let x = random_images(&mut rng, [1, 1, 28, 28]);
    for norm in [Norm::Linf, Norm::L2] {
        let eps = if norm == Norm::Linf { 0.1 } else { 1.5 };
        for kind in [AttackKind::Fgsm, AttackKind::Pgd, AttackKind::LeastLikely, AttackKind::MiFgsm { decay: 1.0 }] {
            for (target, random_start) in [(None, None), (Some(3), Some(seed))] {
                let spec = AttackSpec { kind, norm, epsilon: eps, step_size: eps / 5.0, steps: 8, target, random_start };
                let out = pollster::block_on(attack(&engine, &x, 1, &spec)).unwrap();
                let d: Vec<f32> = out.image.data().iter().zip(x.data()).map(|(a, b)| a - b).collect();
                let size = match norm {
                    Norm::Linf => d.iter().fold(0f32, |m, v| m.max(v.abs())),
                    Norm::L2 => d.iter().map(|v| v * v).sum::<f32>().sqrt(),
                };
                assert!(size <= eps * 1.0001, "seed {seed} {spec:?}: size {size}");
                assert!(size > eps * 0.2, "seed {seed} {spec:?}: barely moved ({size})");
                assert!(out.image.data().iter().all(|v| (0.0..=1.0).contains(v)), "seed {seed} {spec:?}");
                let probs = softmax(pollster::block_on(engine.forward(&out.image)).unwrap().row(0));
                assert_eq!(probs, out.probs);
            }
        }
    }
    // PGD raises the label's loss; a targeted PGD lowers the target's.
    let pgd = pollster::block_on(attack(&engine, &x, 1, &AttackSpec::pgd(0.1, 10))).unwrap();
    assert!(pgd.losses.last() > pgd.losses.first(), "seed {seed}: {:?}", pgd.losses);
    // The observed attack reports every step, in order, with the loss it records and the image
    // it reached, and ends with the same image.
    let mut seen = Vec::new();
    let mut images = Vec::new();
    let observed = pollster::block_on(attack_observed(&engine, &x, 1, &AttackSpec::pgd(0.1, 10), &mut |step, steps, loss, image| {
        seen.push((step, steps, loss));
        images.push(image.to_vec());
    }))
    .unwrap();
    assert_eq!(seen, (1..=10).map(|k| (k, 10, pgd.losses[k - 1])).collect::<Vec<_>>());
    assert_eq!(observed.image.data(), pgd.image.data());
    assert_eq!(images.last().map(Vec::as_slice), Some(pgd.image.data()));
    // Step k of an attack is the whole attack with k steps and the same step size (what the
    // explorer's step slider shows, and what `advlens perturb --steps k --step-size s` gives),
    // for every kind, random start and momentum included.
    for choice in AttackChoice::ALL {
        let spec = choice.spec(0.1, 6, Some(3), Some(seed));
        let mut steps = Vec::new();
        pollster::block_on(attack_observed(&engine, &x, 1, &spec, &mut |_, _, _, image| steps.push(image.to_vec()))).unwrap();
        assert_eq!(steps.len(), spec.steps, "{choice:?}");
        for k in 1..=spec.steps {
            let short = AttackSpec { steps: k, ..spec.clone() };
            let out = pollster::block_on(attack(&engine, &x, 1, &short)).unwrap();
            assert_eq!(out.image.data(), steps[k - 1].as_slice(), "{choice:?} step {k}");
        }
    }
    let targeted = AttackSpec { target: Some(4), ..AttackSpec::pgd(0.1, 10) };
    let t = pollster::block_on(attack(&engine, &x, 1, &targeted)).unwrap();
    assert!(t.probs[4] > t.clean_probs[4], "seed {seed}: target probability {} -> {}", t.clean_probs[4], t.probs[4]);
    assert!(pollster::block_on(attack(&engine, &random_images(&mut rng, [2, 1, 28, 28]), 1, &AttackSpec::fgsm(0.1))).is_err());
}

#[test]
fn ensemble_attack_lowers_its_loss_and_respects_its_box() {
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    // Three models with the same 3x32x32 input: one architecture, three random draws.
    let models: Vec<Engine> = (0..3).map(|_| engine(&mut rng, 1)).collect();
    let refs: Vec<&Engine> = models.iter().collect();
    let x = random_images(&mut rng, [1, 3, 32, 32]);
    for box_epsilon in [Some(0.05f32), None] {
        let spec = EnsembleSpec { target: 2, weights: vec![1.0, 1.0, 2.0], lambda: 0.1, steps: 30, learning_rate: 0.01, box_epsilon };
        let out = pollster::block_on(ensemble_attack(&refs, &x, &spec)).unwrap();
        assert_eq!(out.losses.len(), 31);
        assert!(out.losses[30] < out.losses[0], "seed {seed}: loss {} -> {}", out.losses[0], out.losses[30]);
        assert!(out.image.data().iter().all(|v| (0.0..=1.0).contains(v)));
        if let Some(e) = box_epsilon {
            assert!(max_abs_diff(out.image.data(), x.data()) <= e * 1.0001, "seed {seed}: left the box");
        }
        assert_eq!(out.success.len(), 3);
        for (i, m) in refs.iter().enumerate() {
            let p = softmax(pollster::block_on(m.forward(&out.image)).unwrap().row(0))[2];
            assert!((p - out.target_probs[i]).abs() < 1e-5);
        }
    }
    // As one of the page's attacks: equal weights, the spec's step size as Adam's rate, its
    // epsilon as the box, the first model's view of the result; untargeted, it aims at the
    // class the first model finds least likely.
    let spec = AttackChoice::Ensemble.spec(0.05, 12, Some(2), None);
    let plain = EnsembleSpec { target: 2, weights: vec![1.0; 3], lambda: 0.0, steps: 12, learning_rate: spec.step_size, box_epsilon: Some(0.05) };
    let reference = pollster::block_on(ensemble_attack(&refs, &x, &plain)).unwrap();
    let mut seen = Vec::new();
    let out = pollster::block_on(ensemble_observed(&refs, &x, 0, &spec, &mut |k, n, loss, _| seen.push((k, n, loss)))).unwrap();
    assert_eq!(out.image.data(), reference.image.data());
    assert_eq!(seen, (1..=12).map(|k| (k, 12, reference.losses[k - 1])).collect::<Vec<_>>());
    assert_eq!((out.target, out.success), (Some(2), reference.success[0]));
    assert_eq!(out.probs, softmax(pollster::block_on(refs[0].forward(&out.image)).unwrap().row(0)));
    let clean = softmax(pollster::block_on(refs[0].forward(&x)).unwrap().row(0));
    let least = (0..clean.len()).fold(0, |b, i| if clean[i] < clean[b] { i } else { b });
    let untargeted = pollster::block_on(ensemble_observed(&refs, &x, 0, &AttackSpec { target: None, ..spec.clone() }, &mut |_, _, _, _| {})).unwrap();
    assert_eq!(untargeted.target, Some(least));
    // On one engine, `attack` runs it as an ensemble of one.
    let alone = pollster::block_on(attack(refs[0], &x, 0, &spec)).unwrap();
    let one = EnsembleSpec { weights: vec![1.0], ..plain };
    assert_eq!(alone.image.data(), pollster::block_on(ensemble_attack(&refs[..1], &x, &one)).unwrap().image.data());
}

/// Downstream of a ReLU layer, max pooling + linear is positively homogeneous in each channel,
/// so zeroing a channel changes each logit by exactly -(gradient x activation).
#[test]
fn tracing_gradient_x_activation_equals_the_ablation_effect_on_the_logit() {
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    let engine = engine(&mut rng, 0);
    let x = random_images(&mut rng, [1, 1, 28, 28]);
    let class = 6;
    let influences = pollster::block_on(trace(&engine, &x, class, "relu4")).unwrap();
    assert_eq!(influences.len(), 16);
    assert!(influences.windows(2).all(|w| w[0].logit_drop >= w[1].logit_drop), "sorted by effect");
    let logits = pollster::block_on(engine.forward(&x)).unwrap();
    let p = softmax(logits.row(0))[class];
    for inf in &influences {
        let ablated = pollster::block_on(engine.forward_ablated(&x, &Ablation::default().zero("relu4", inf.channel))).unwrap();
        let drop = logits.row(0)[class] - ablated.row(0)[class];
        assert!((drop - inf.grad_x_act).abs() <= 1e-4 * (1.0 + drop.abs()), "seed {seed} channel {}: {drop} vs {}", inf.channel, inf.grad_x_act);
        assert!((p - softmax(ablated.row(0))[class] - inf.prob_drop).abs() < 1e-6);
        assert!((drop - inf.logit_drop).abs() < 1e-6);
    }
    assert!(pollster::block_on(trace(&engine, &x, class, "linear7")).is_err(), "a linear layer has no feature maps");
}

/// Tracing's tail-only ablation equals the whole ablated forward, on every reference model, for
/// each node's first and last channel and for two nodes at once (residual and concatenating
/// graphs make the "downstream" set non-trivial); a map without every node is refused.
#[test]
fn ablation_from_cached_activations_equals_the_whole_ablated_forward() {
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    for (name, spec) in reference_cases() {
        let bundle = Arc::new(random_bundle(&mut rng, spec.clone()));
        let cpu = advlens_shared::engine::cpu::CpuEngine::new(bundle.clone());
        let [c, h, w] = bundle.input_shape();
        let x = random_images(&mut rng, [2, c, h, w]);
        let all = cpu.forward_all(&x).unwrap();
        let nodes: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).filter(|n| *n != spec.output).collect();
        for node in &nodes {
            let channels = bundle.shape_of(node).unwrap()[0];
            for ch in [0, channels - 1] {
                let ablation = Ablation::default().zero(node, ch);
                let want = cpu.forward_ablated(&x, &ablation).unwrap();
                let got = cpu.forward_ablated_from(&all, &ablation).unwrap();
                assert_eq!(got.shape(), want.shape());
                assert!(max_abs_diff(got.data(), want.data()) == 0.0, "seed {seed} {name}: `{node}` channel {ch}");
            }
        }
        let two = Ablation::default().zero(nodes[0], 0).zero(nodes[nodes.len() / 2], 0);
        assert_eq!(cpu.forward_ablated_from(&all, &two).unwrap().data(), cpu.forward_ablated(&x, &two).unwrap().data(), "{name}: two nodes");
        assert_eq!(cpu.forward_ablated_from(&all, &Ablation::default()).unwrap().data(), all[&spec.output].data(), "{name}: nothing ablated");
        let mut partial = all.clone();
        partial.remove(nodes[0]);
        let err = cpu.forward_ablated_from(&partial, &Ablation::default().zero(nodes[0], 0)).unwrap_err().to_string();
        assert!(err.contains(&format!("`{}` is missing", nodes[0])), "{err}");
        assert!(cpu.forward_ablated_from(&all, &Ablation::default().zero(nodes[0], 9999)).is_err());
    }
}
