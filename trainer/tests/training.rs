//! The training pieces against independent computations: losses by hand, attack constraints,
//! and our Adam against libtorch's (the loss going down on real data: `training_loss.rs`).

use std::collections::HashMap;

use advlens_shared::model::{InputSpec, ModelSpec, Node, Op, FORMAT_NAME, FORMAT_VERSION, INPUT_NAME};
use advlens_trainer::attack::{trades_perturb, Attack, AttackKind, BatchPart, Norm};
use advlens_trainer::mode::{consistent_loss, step_loss, trades_loss, Distance, Mode};
use advlens_trainer::net::Net;
use advlens_trainer::optim::Adam;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Reduction, Tensor};

/// input 1x2x2 -> flatten -> fc (4 -> 3), with mean 0.5 and std 0.25.
fn linear_spec() -> ModelSpec {
    let node = |name: &str, input: &str, op| Node { name: name.into(), inputs: vec![input.into()], op };
    ModelSpec {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name: "tiny".into(),
        input: InputSpec { channels: 1, height: 2, width: 2, mean: vec![0.5], std: vec![0.25] },
        classes: vec!["a".into(), "b".into(), "c".into()],
        nodes: vec![node("flatten", INPUT_NAME, Op::Flatten), node("fc", "flatten", Op::Linear { in_features: 4, out_features: 3 })],
        output: "fc".into(),
        hierarchy: Default::default(),
        provenance: Default::default(),
    }
}

const W: [[f64; 4]; 3] = [[0.5, -1.0, 0.25, 0.0], [-0.3, 0.2, 0.1, 0.7], [0.05, 0.4, -0.6, -0.2]];
const B: [f64; 3] = [0.1, -0.2, 0.3];

fn linear_net(vs: &nn::VarStore) -> Net {
    let mut net = Net::new(&vs.root(), &linear_spec());
    let mut weights = HashMap::new();
    let w: Vec<f32> = W.iter().flatten().map(|&v| v as f32).collect();
    weights.insert("fc.weight".to_string(), advlens_shared::Tensor::new(vec![3, 4], w).unwrap());
    weights.insert("fc.bias".to_string(), advlens_shared::Tensor::new(vec![3], B.iter().map(|&v| v as f32).collect()).unwrap());
    net.load_weights(&weights).unwrap();
    net
}

/// Logits and normalised input of the linear net, by hand.
fn hand_logits(x: &[f64; 4]) -> ([f64; 3], [f64; 4]) {
    let z = x.map(|v| (v - 0.5) / 0.25);
    let mut l = B;
    for (k, row) in W.iter().enumerate() {
        l[k] += row.iter().zip(&z).map(|(w, z)| w * z).sum::<f64>();
    }
    (l, z)
}

fn hand_ce(l: &[f64; 3], y: usize) -> f64 {
    let m = l.iter().cloned().fold(f64::MIN, f64::max);
    let lse = m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    lse - l[y]
}

fn softmax(l: &[f64; 3]) -> [f64; 3] {
    let m = l.iter().cloned().fold(f64::MIN, f64::max);
    let e = l.map(|v| (v - m).exp());
    let s: f64 = e.iter().sum();
    e.map(|v| v / s)
}

const XS: [[f64; 4]; 2] = [[0.1, 0.9, 0.4, 0.7], [0.8, 0.2, 0.3, 0.55]];
const XA: [[f64; 4]; 2] = [[0.2, 0.8, 0.45, 0.6], [0.7, 0.3, 0.35, 0.5]];
const YS: [usize; 2] = [2, 0];

fn batch(xs: &[[f64; 4]; 2]) -> Tensor {
    let flat: Vec<f32> = xs.iter().flatten().map(|&v| v as f32).collect();
    Tensor::from_slice(&flat).view([2, 1, 2, 2])
}

fn labels() -> Tensor {
    Tensor::from_slice(&YS.map(|y| y as i64))
}

#[test]
fn each_loss_equals_a_hand_computation() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = linear_net(&vs);
    let (x, xa, y) = (batch(&XS), batch(&XA), labels());

    // standard: mean cross-entropy
    let got = step_loss(&net, &Mode::Standard, &x, &y).loss.double_value(&[]);
    let want = (0..2).map(|i| hand_ce(&hand_logits(&XS[i]).0, YS[i])).sum::<f64>() / 2.0;
    assert!((got - want).abs() < 1e-5, "standard: {got} vs {want}");

    // trades: CE(clean) + beta * mean_i KL(p_clean_i || p_adv_i)
    let beta = 6.0;
    let got = trades_loss(&net.forward(&x), &net.forward(&xa), &y, beta).double_value(&[]);
    let mut kl = 0.0;
    for i in 0..2 {
        let (p, q) = (softmax(&hand_logits(&XS[i]).0), softmax(&hand_logits(&XA[i]).0));
        kl += (0..3).map(|k| p[k] * (p[k] / q[k]).ln()).sum::<f64>();
    }
    let want_trades = want + beta * kl / 2.0;
    assert!((got - want_trades).abs() < 1e-5, "trades: {got} vs {want_trades}");

    // consistent: CE(clean) + CE(adv) + lambda * mean over all feature values of the squared difference
    let lambda = 0.7;
    let (loss, _, _) = consistent_loss(&net, &x, &xa, &y, lambda, Distance::Mean, "flatten", false);
    let ce_adv = (0..2).map(|i| hand_ce(&hand_logits(&XA[i]).0, YS[i])).sum::<f64>() / 2.0;
    let mut sq = 0.0;
    for i in 0..2 {
        let (zc, za) = (hand_logits(&XS[i]).1, hand_logits(&XA[i]).1);
        sq += zc.iter().zip(&za).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
    }
    let want_consistent = want + ce_adv + lambda * sq / 8.0;
    let got = loss.double_value(&[]);
    assert!((got - want_consistent).abs() < 1e-5, "consistent: {got} vs {want_consistent}");
    // The paper's squared norm: summed over each image's 4 features, averaged over the 2 images.
    let (loss, _, _) = consistent_loss(&net, &x, &xa, &y, lambda, Distance::Sum, "flatten", false);
    let want_sum = want + ce_adv + lambda * sq / 2.0;
    let got = loss.double_value(&[]);
    assert!((got - want_sum).abs() < 1e-5, "consistent, summed distance: {got} vs {want_sum}");
}

#[test]
fn consistent_loss_with_lambda_zero_is_plain_adversarial_training() {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Net::new(&vs.root(), &conv_spec());
    let x = Tensor::rand([6, 1, 12, 12], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [6], (Kind::Int64, Device::Cpu));
    let attack = Attack { kind: AttackKind::Pgd, norm: Norm::Linf, epsilon: 0.1, step_size: 0.03, steps: 3, random_start: false };
    let xa = attack.perturb(&net, &x, &y);
    let (loss, _, _) = consistent_loss(&net, &x, &xa, &y, 0.0, Distance::Mean, "relu1", false);
    // Adversarial training of Goodfellow et al. / Kurakin et al.: CE on clean + CE on adversarial,
    // each image through the network on its own.
    let plain = net.forward(&x).cross_entropy_for_logits(&y) + net.forward(&xa).cross_entropy_for_logits(&y);
    let (a, b) = (loss.double_value(&[]), plain.double_value(&[]));
    assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    // And lambda > 0 adds a positive term (the feature maps differ).
    let (with, _, _) = consistent_loss(&net, &x, &xa, &y, 1.0, Distance::Mean, "relu1", false);
    assert!(with.double_value(&[]) > a);
}

/// conv(1->4, 3x3) - relu - pool - flatten - linear(4*6*6 -> 10), for 12x12 inputs.
fn conv_spec() -> ModelSpec {
    let mut spec = linear_spec();
    spec.input = InputSpec { channels: 1, height: 12, width: 12, mean: vec![0.4], std: vec![0.3] };
    spec.classes = (0..10).map(|i| i.to_string()).collect();
    let node = |name: &str, input: &str, op| Node { name: name.into(), inputs: vec![input.into()], op };
    spec.nodes = vec![
        node("conv1", INPUT_NAME, Op::Conv2d { in_channels: 1, out_channels: 4, kernel: 3, stride: 1, padding: 1, groups: 1, dilation: 1 }),
        node("relu1", "conv1", Op::Relu),
        node("pool1", "relu1", Op::MaxPool2d { kernel: 2, stride: 2, padding: 0 }),
        node("flatten", "pool1", Op::Flatten),
        node("fc", "flatten", Op::Linear { in_features: 4 * 6 * 6, out_features: 10 }),
    ];
    spec
}

#[test]
fn every_attack_stays_in_its_ball_and_in_the_unit_box_and_raises_the_loss() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64 & 0xffff_ffff;
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Net::new(&vs.root(), &conv_spec());
    // Saturated pixels too, where the box constraint bites.
    let x = (Tensor::rand([8, 1, 12, 12], (Kind::Float, Device::Cpu)) * 1.4 - 0.2).clamp(0.0, 1.0);
    let y = Tensor::randint(10, [8], (Kind::Int64, Device::Cpu));
    let ce = |images: &Tensor| net.forward(images).cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0).double_value(&[]);
    let clean_loss = ce(&x);
    for (norm, eps) in [(Norm::Linf, 0.08), (Norm::L2, 0.9)] {
        for kind in [AttackKind::Fgsm, AttackKind::Pgd, AttackKind::LeastLikely] {
            for random_start in [false, true] {
                let attack = Attack { kind, norm, epsilon: eps, step_size: eps / 4.0, steps: 7, random_start };
                let xa = attack.perturb(&net, &x, &y);
                let delta = &xa - &x;
                let size = match norm {
                    Norm::Linf => delta.abs().max().double_value(&[]),
                    Norm::L2 => advlens_trainer::attack::per_image_norm(&delta).max().double_value(&[]),
                };
                assert!(size <= eps + 1e-5, "seed {seed} {attack}: perturbation {size} > {eps}");
                assert!(size > eps * 0.2, "seed {seed} {attack}: the attack barely moved ({size})");
                assert!(xa.min().double_value(&[]) >= 0.0 && xa.max().double_value(&[]) <= 1.0, "seed {seed} {attack}: left [0,1]");
                if kind == AttackKind::Pgd {
                    assert!(ce(&xa) > clean_loss, "seed {seed} {attack}: loss {} not above clean {clean_loss}", ce(&xa));
                }
            }
        }
    }
    let xt = trades_perturb(&net, &x, 0.05, 0.01, 5, BatchPart::whole(&x));
    assert!((&xt - &x).abs().max().double_value(&[]) <= 0.05 + 1e-6, "seed {seed}: trades left its ball");
    assert!(xt.min().double_value(&[]) >= 0.0 && xt.max().double_value(&[]) <= 1.0);
}

#[test]
fn our_adam_matches_libtorchs() {
    tch::manual_seed(3);
    let ours_vs = nn::VarStore::new(Device::Cpu);
    let ours = Net::new(&ours_vs.root(), &conv_spec());
    let mut theirs_vs = nn::VarStore::new(Device::Cpu);
    let theirs = Net::new(&theirs_vs.root(), &conv_spec());
    theirs_vs.copy(&ours_vs).unwrap();
    let mut adam = Adam::new(&ours, 0.01);
    let mut torch_adam = nn::Adam::default().build(&theirs_vs, 0.01).unwrap();
    for step in 0..6 {
        let x = Tensor::rand([5, 1, 12, 12], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(10, [5], (Kind::Int64, Device::Cpu));
        adam.backward_step(&ours, &ours.forward(&x).cross_entropy_for_logits(&y));
        torch_adam.backward_step(&theirs.forward(&x).cross_entropy_for_logits(&y));
        for (name, p) in ours.trainable() {
            let q = &theirs.tensors()[name];
            let diff = (p - q).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "step {step}, {name}: ours and libtorch's Adam differ by {diff}");
        }
    }
}

/// libtorch's bilinear upsampling (what `analyze` uses) equals the shared definition, and the
/// trainer's dataset-level concept IoU equals one computed with the shared metric functions.
#[test]
fn concept_iou_agrees_with_the_shared_metrics() {
    use advlens_shared::analysis::metrics::{upsample, IouCounter};
    use advlens_trainer::analysis::{concept_iou, concept_thresholds};
    use advlens_trainer::data::concepts::Masks;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64 & 0xffff_ffff;
    tch::manual_seed(seed);
    let (n, c, h, side) = (6i64, 3i64, 5i64, 32usize);
    let maps = Tensor::rand([n, c, h, h], (Kind::Float, Device::Cpu));
    let up = maps.upsample_bilinear2d([side as i64, side as i64], false, None, None);
    for i in 0..n {
        for ch in 0..c {
            let ours = upsample(&Vec::<f32>::try_from(maps.get(i).get(ch).flatten(0, -1)).unwrap(), h as usize, h as usize, side, side);
            let theirs = Vec::<f32>::try_from(up.get(i).get(ch).flatten(0, -1)).unwrap();
            let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "seed {seed}: bilinear upsampling differs by {worst}");
        }
    }
    // Masks from the concept world itself.
    let world = advlens_shared::concepts::ConceptWorld::default();
    let masks: Vec<Masks> = (0..n as u64)
        .map(|i| {
            let im = world.generate(seed as u64, i);
            Masks { index: i as u32, class: im.class as u8, object: im.object, parts: im.parts, colour: im.colour, texture: im.texture }
        })
        .collect();
    // Low thresholds so that IoUs are not all zero.
    let thresholds: Vec<f32> = vec![0.6; c as usize];
    let best = concept_iou(&maps, &thresholds, &masks).unwrap();
    for ch in 0..c as usize {
        let (category, name, iou) = best[ch].clone().unwrap();
        let k = match category.as_str() {
            "part" => advlens_shared::concepts::vocab::PARTS.iter().position(|p| p.name == name).unwrap(),
            "object" => advlens_shared::concepts::vocab::OBJECTS.iter().position(|o| o.name == name).unwrap(),
            "colour" => advlens_shared::concepts::vocab::COLOURS.iter().position(|c| c.0 == name).unwrap(),
            _ => advlens_shared::concepts::vocab::TEXTURES.iter().position(|t| *t == name).unwrap(),
        };
        let mut counter = IouCounter::default();
        for (i, m) in masks.iter().enumerate() {
            let map = upsample(&Vec::<f32>::try_from(maps.get(i as i64).get(ch as i64).flatten(0, -1)).unwrap(), h as usize, h as usize, side, side);
            let active: Vec<bool> = map.iter().map(|&v| v > thresholds[ch]).collect();
            let concept: Vec<bool> = (0..side * side)
                .map(|p| match category.as_str() {
                    "part" => m.parts[p] >> k & 1 == 1,
                    "object" => m.object[p] >> k & 1 == 1,
                    "colour" => m.colour[p] >> k & 1 == 1,
                    _ => m.texture[p] >> k & 1 == 1,
                })
                .collect();
            counter.add(&active, &concept);
        }
        assert!((counter.iou() - iou).abs() < 1e-9, "seed {seed} channel {ch}: {category}:{name} {iou} vs shared {}", counter.iou());
        assert!(iou > 0.0);
    }
    let t = concept_thresholds(&maps).unwrap();
    assert_eq!(t.len(), c as usize);
    assert!(t.iter().all(|&v| v > 0.9), "the top 0.5% of uniform values lie near 1: {t:?}");
}

#[test]
fn cosine_schedule_decays_from_the_base_rate_to_zero() {
    use advlens_trainer::train::scheduled_lr;
    assert_eq!(scheduled_lr(0.1, "constant", 7, 10), 0.1);
    assert!((scheduled_lr(0.1, "cosine", 0, 10) - 0.1).abs() < 1e-12);
    assert!((scheduled_lr(0.1, "cosine", 5, 10) - 0.05).abs() < 1e-12);
    assert!(scheduled_lr(0.1, "cosine", 10, 10).abs() < 1e-12);
    assert!(scheduled_lr(0.1, "cosine", 3, 10) > scheduled_lr(0.1, "cosine", 4, 10));
}

/// Epsilon warm-up: linear from one step's share to the full ball after the warm-up epochs, and
/// the scaled mode's attacks stay inside the smaller ball.
#[test]
fn epsilon_warmup_grows_linearly_and_shrinks_the_attack_ball() {
    use advlens_trainer::train::warmup_fraction;
    assert_eq!(warmup_fraction(0, 100, 0.0), 1.0);
    assert!((warmup_fraction(0, 100, 2.0) - 1.0 / 200.0).abs() < 1e-12);
    assert!((warmup_fraction(99, 100, 2.0) - 0.5).abs() < 1e-12);
    assert_eq!(warmup_fraction(199, 100, 2.0), 1.0);
    assert_eq!(warmup_fraction(5_000, 100, 2.0), 1.0);
    let attack = Attack { kind: AttackKind::Pgd, norm: Norm::Linf, epsilon: 0.3, step_size: 0.1, steps: 3, random_start: true };
    let mode = Mode::Pgd { attack };
    let Mode::Pgd { attack: scaled } = mode.scaled_epsilon(0.25) else { panic!("still pgd") };
    assert!((scaled.epsilon - 0.075).abs() < 1e-12 && (scaled.step_size - 0.025).abs() < 1e-12);
    assert_eq!(Mode::Standard.scaled_epsilon(0.5), Mode::Standard);
    // The scaled attack's images lie in the scaled ball (fresh random images and weights).
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Net::new(&vs.root(), &conv_spec());
    let seed = rand_seed();
    tch::manual_seed(seed);
    let x = Tensor::rand([4, 1, 12, 12], (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 1, 2, 0]);
    let x_adv = scaled.perturb(&net, &x, &y);
    let linf = (&x_adv - &x).abs().max().double_value(&[]);
    assert!(linf <= 0.075 + 1e-6 && linf > 0.0, "seed {seed}: {linf}");
}

fn rand_seed() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64 & 0xffff_ffff
}
