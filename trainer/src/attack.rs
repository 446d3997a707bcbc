//! Batched attacks on libtorch, for adversarial training and evaluation.
//!
//! Images live in [0, 1]; every attack returns images inside the epsilon ball around the input
//! and inside [0, 1]. The network is run in inference mode (batch norm uses running statistics,
//! dropout is off) so that generating an attack never changes the model.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::net::Net;

pub use advlens_shared::attack::{AttackKind, Norm};

/// The attacks the batched libtorch code runs, by their command-line names: FGSM (one
/// signed-gradient step of size epsilon, Goodfellow et al.), PGD (Madry et al., optional random
/// start) and the iterative least-likely class (Kurakin et al.: a targeted PGD towards the class
/// the model finds least likely on the clean image).
pub fn parse_kind(name: &str) -> Result<AttackKind> {
    Ok(match name {
        "fgsm" => AttackKind::Fgsm,
        "pgd" => AttackKind::Pgd,
        "ll" | "least-likely" => AttackKind::LeastLikely,
        other => bail!("unknown attack `{other}`: use fgsm, pgd or ll (iterative least-likely class)"),
    })
}

/// `linf` or `l2`.
pub fn parse_norm(name: &str) -> Result<Norm> {
    Norm::parse(name).ok_or_else(|| anyhow::anyhow!("unknown norm `{name}`: use linf or l2"))
}

/// Whether the batched attacks run `kind` (MI-FGSM and the ensemble attack run on one image,
/// in `shared`: `advlens perturb` and the explorer).
pub fn check_batched(kind: AttackKind) -> Result<()> {
    match kind {
        AttackKind::Fgsm | AttackKind::Pgd | AttackKind::LeastLikely => Ok(()),
        other => bail!("the trainer's batched attacks are fgsm, pgd and ll; {other:?} runs on one image only (advlens perturb)"),
    }
}

/// Madry et al.'s rule of thumb for PGD's step: the steps together can travel 2.5 epsilon, so
/// few steps still reach the edge of the ball.
pub fn pgd_step_size(epsilon: f64, steps: usize) -> f64 {
    2.5 * epsilon / steps.max(1) as f64
}

/// An attack and its budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attack {
    pub kind: AttackKind,
    pub norm: Norm,
    /// Radius of the ball, on the [0, 1] pixel scale.
    pub epsilon: f64,
    /// Step size of the iterative attacks.
    pub step_size: f64,
    pub steps: usize,
    /// Start from a uniformly random point of the ball (PGD).
    pub random_start: bool,
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let norm = self.norm.label();
        match self.kind {
            AttackKind::Fgsm => write!(f, "FGSM {norm} eps={}", self.epsilon),
            AttackKind::Pgd => write!(f, "PGD-{} {norm} eps={} step={}", self.steps, self.epsilon, self.step_size),
            AttackKind::LeastLikely => {
                write!(f, "least-likely-{} {norm} eps={} step={}", self.steps, self.epsilon, self.step_size)
            }
            other => write!(f, "{other:?} {norm} eps={}", self.epsilon),
        }
    }
}

/// Which rows of a larger batch a tensor holds: rows `offset..offset + len` of `total`.
///
/// Random draws (attack starts) are made for the whole batch and cut to the part, so a batch
/// split across the ranks of a distributed run gets exactly the noise it would get in one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPart {
    pub offset: i64,
    pub total: i64,
}

impl BatchPart {
    /// The whole batch of `x`.
    pub fn whole(x: &Tensor) -> Self {
        BatchPart { offset: 0, total: x.size()[0] }
    }

    /// A random tensor shaped like `x` but drawn for the whole batch, cut to this part.
    fn draw(&self, x: &Tensor, draw: impl Fn(&[i64]) -> Tensor) -> Tensor {
        let mut shape = x.size();
        let len = shape[0];
        shape[0] = self.total;
        draw(&shape).narrow(0, self.offset, len)
    }
}

impl Attack {
    /// Adversarial versions of `images` `[N,C,H,W]` for true `labels` `[N]` (no gradient graph).
    pub fn perturb(&self, net: &Net, images: &Tensor, labels: &Tensor) -> Tensor {
        self.perturb_part(net, images, labels, BatchPart::whole(images))
    }

    /// [`Attack::perturb`] of the rows `part` of a larger batch.
    pub fn perturb_part(&self, net: &Net, images: &Tensor, labels: &Tensor, part: BatchPart) -> Tensor {
        match self.kind {
            AttackKind::Fgsm => {
                let step = Attack { steps: 1, step_size: self.epsilon, random_start: false, ..self.clone() };
                step.iterate(net, images, labels, false, part)
            }
            AttackKind::Pgd => self.iterate(net, images, labels, false, part),
            AttackKind::LeastLikely => {
                let target = tch::no_grad(|| net.forward(images).argmin(-1, false));
                self.iterate(net, images, &target, true, part)
            }
            // Refused where attacks are made (parse_kind, Mode::check).
            other => unreachable!("{other:?} is not a batched attack: {}", check_batched(other).unwrap_err()),
        }
    }

    /// Signed (L-inf) or normalised (L2) gradient steps on the cross-entropy of `labels`:
    /// ascending it (untargeted) or descending it (`targeted`), projected after each step.
    pub fn iterate(&self, net: &Net, images: &Tensor, labels: &Tensor, targeted: bool, part: BatchPart) -> Tensor {
        let x0 = images.detach();
        let mut x = if self.random_start { self.project(&x0, &(&x0 + self.random_delta(&x0, part))) } else { x0.shallow_clone() };
        for _ in 0..self.steps {
            let xr = x.detach().set_requires_grad(true);
            let loss = net.forward(&xr).cross_entropy_loss::<Tensor>(labels, None, Reduction::Sum, -100, 0.0);
            let grad = Tensor::run_backward(&[loss], &[&xr], false, false).pop().expect("one input, one gradient");
            let direction = if targeted { -grad } else { grad };
            x = tch::no_grad(|| self.project(&x0, &(&x + self.step(&direction))));
        }
        x.detach()
    }

    /// The step for gradient `g`: `alpha * sign(g)` (L-inf) or `alpha * g / ||g||` (L2).
    fn step(&self, g: &Tensor) -> Tensor {
        match self.norm {
            Norm::Linf => g.sign() * self.step_size,
            Norm::L2 => g / per_image_norm(g).clamp_min(1e-12) * self.step_size,
        }
    }

    /// A uniformly random point of the L-inf ball, or a random direction in the L2 ball.
    fn random_delta(&self, x: &Tensor, part: BatchPart) -> Tensor {
        let options = (x.kind(), x.device());
        match self.norm {
            Norm::Linf => (part.draw(x, |s| Tensor::rand(s, options)) * 2.0 - 1.0) * self.epsilon,
            Norm::L2 => {
                let d = part.draw(x, |s| Tensor::randn(s, options));
                let radius = part.draw(&x.narrow(1, 0, 1).narrow(2, 0, 1).narrow(3, 0, 1), |s| Tensor::rand(s, (Kind::Float, x.device()))) * self.epsilon;
                &d / per_image_norm(&d).clamp_min(1e-12) * radius
            }
        }
    }

    /// Projects `x` onto the epsilon ball around `x0`, then onto [0, 1].
    pub fn project(&self, x0: &Tensor, x: &Tensor) -> Tensor {
        let delta = x - x0;
        let delta = match self.norm {
            Norm::Linf => delta.clamp(-self.epsilon, self.epsilon),
            Norm::L2 => {
                let scale = (per_image_norm(&delta).clamp_min(1e-12).reciprocal() * self.epsilon).clamp_max(1.0);
                delta * scale
            }
        };
        (x0 + delta).clamp(0.0, 1.0)
    }
}

/// The L2 norm of each image of `[N,C,H,W]`, shaped `[N,1,1,1]` for broadcasting.
pub fn per_image_norm(t: &Tensor) -> Tensor {
    t.flatten(1, -1).norm_scalaropt_dim(2, [1i64].as_slice(), false).view([-1, 1, 1, 1])
}

/// TRADES' inner maximisation: from `x + 0.001 N(0, 1)`, signed steps that increase
/// `KL(f(x) || f(x'))`, projected on the L-inf ball (Zhang et al. 2019).
pub fn trades_perturb(net: &Net, images: &Tensor, epsilon: f64, step_size: f64, steps: usize, part: BatchPart) -> Tensor {
    let x0 = images.detach();
    let clean = tch::no_grad(|| net.forward(&x0).softmax(-1, Kind::Float));
    let ball = Attack { kind: AttackKind::Pgd, norm: Norm::Linf, epsilon, step_size, steps, random_start: false };
    let noise = part.draw(&x0, |s| Tensor::randn(s, (x0.kind(), x0.device())));
    let mut x = ball.project(&x0, &(&x0 + noise * 0.001));
    for _ in 0..steps {
        let xr = x.detach().set_requires_grad(true);
        let kl = net.forward(&xr).log_softmax(-1, Kind::Float).kl_div(&clean, Reduction::Sum, false);
        let grad = Tensor::run_backward(&[kl], &[&xr], false, false).pop().expect("one gradient");
        x = tch::no_grad(|| ball.project(&x0, &(&x + grad.sign() * step_size)));
    }
    x.detach()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;

    /// The trainer reads shared's attack names; a saved run's mode still reads; the attacks it
    /// cannot batch are refused with the way to run them.
    #[test]
    fn one_attack_vocabulary_with_the_batched_subset() {
        assert_eq!(parse_kind("ll").unwrap(), AttackKind::LeastLikely);
        assert!(parse_kind("mi-fgsm").unwrap_err().to_string().contains("use fgsm, pgd or ll"));
        assert_eq!(parse_norm("l2").unwrap(), Norm::L2);
        assert!(parse_norm("l1").unwrap_err().to_string().contains("use linf or l2"));
        let saved = r#"{"mode": "pgd", "attack": {"kind": "pgd", "norm": "linf", "epsilon": 0.03, "step_size": 0.02, "steps": 3, "random_start": true}}"#;
        let mode: Mode = serde_json::from_str(saved).unwrap();
        assert_eq!(mode.attack().map(|a| (a.kind, a.norm)), Some((AttackKind::Pgd, Norm::Linf)));
        let err = check_batched(AttackKind::MiFgsm { decay: 1.0 }).unwrap_err().to_string();
        assert!(err.contains("advlens perturb"), "{err}");
    }
}
