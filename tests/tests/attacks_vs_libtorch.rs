//! The shared crate's single-image attacks (what the explorer runs) against the trainer's
//! batched libtorch attacks: same model, same image, same budget -> same adversarial image.

use std::sync::Arc;

use advlens_shared::attack::{attack, AttackKind, AttackSpec, Norm};
use advlens_shared::engine::Engine;
use advlens_shared::model::Bundle;
use advlens_shared::testing::{fresh_seed, random_images, random_weights, reference_cases, Rng};
use advlens_trainer::attack as tch_attack;
use advlens_trainer::net::Net;
use tch::{nn, Device, Kind};

#[test]
fn shared_attacks_match_libtorch_attacks() {
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    for (name, spec) in reference_cases() {
        let weights = random_weights(&mut rng, &spec);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut net = Net::new(&vs.root(), &spec);
        net.load_weights(&weights).unwrap();
        let engine = Engine::cpu(Arc::new(Bundle::new(spec.clone(), weights).unwrap()));
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
