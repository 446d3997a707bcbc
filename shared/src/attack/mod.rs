//! Attacks on one image, on any [`Engine`] — what the explorer runs live in the browser.
//!
//! The same definitions as the trainer's batched libtorch attacks (`trainer/src/attack.rs`);
//! `tests/tests/attacks_vs_libtorch.rs` checks that both give the same images. Images are in
//! [0, 1]; every result stays in its epsilon ball and in [0, 1].

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Objective};
use crate::rng::SplitMix;
use crate::tensor::{argmax, softmax};
use crate::{Error, Result, Tensor};

mod choice;
mod ensemble;

pub use choice::{AttackChoice, DEFAULT_EPSILON, DEFAULT_STEPS};
pub use ensemble::{ensemble_attack, ensemble_observed, EnsembleOutcome, EnsembleSpec, ENSEMBLE_LEARNING_RATE};

/// Which attack: the one vocabulary of the explorer, the CLI and the trainer (whose batched
/// libtorch attacks run the first three). In JSON: "fgsm", "pgd", "least-likely",
/// {"mi-fgsm": {"decay": ..}}, {"ensemble": {"lambda": ..}}.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// One signed-gradient step of size epsilon.
    Fgsm,
    /// Projected gradient descent; `random_start` picks a uniform point of the ball first.
    Pgd,
    /// Iterative least-likely class: targeted PGD towards the class the model finds least
    /// likely on the clean image (Kurakin et al.).
    LeastLikely,
    /// Momentum iterative FGSM (Dong et al. 2018): steps along the sign of an accumulated,
    /// L1-normalised gradient; transfers better between models.
    MiFgsm { decay: f32 },
    /// The paper's ensemble-optimisation attack (Liu et al. 2017): Adam, with the spec's step
    /// size as its learning rate, on `-log(mean_i p_i(target)) + lambda * mean((x* - x)^2)`
    /// over one or more models, kept in the epsilon box. Always aimed at a class: the given
    /// target, else the class the first model finds least likely. No random start.
    Ensemble { lambda: f32 },
}

/// The perturbation norm ("linf" or "l2" in JSON and on command lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    #[serde(alias = "Linf")]
    Linf,
    #[serde(alias = "L2")]
    L2,
}

impl Norm {
    /// `linf` (also `inf`) or `l2`, any case.
    pub fn parse(name: &str) -> Option<Norm> {
        match name.to_ascii_lowercase().as_str() {
            "linf" | "inf" => Some(Norm::Linf),
            "l2" => Some(Norm::L2),
            _ => None,
        }
    }

    /// "Linf" or "L2", for people.
    pub fn label(self) -> &'static str {
        match self {
            Norm::Linf => "Linf",
            Norm::L2 => "L2",
        }
    }
}

/// An attack and its budget (serialisable: the explorer sends it to its worker).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSpec {
    pub kind: AttackKind,
    pub norm: Norm,
    pub epsilon: f32,
    pub step_size: f32,
    pub steps: usize,
    /// Aim at this class (descend its cross-entropy) instead of moving away from the label.
    pub target: Option<usize>,
    /// Seed of the random start (`None`: start at the image).
    pub random_start: Option<u64>,
}

impl AttackSpec {
    /// FGSM with budget `epsilon`.
    pub fn fgsm(epsilon: f32) -> Self {
        Self { kind: AttackKind::Fgsm, norm: Norm::Linf, epsilon, step_size: epsilon, steps: 1, target: None, random_start: None }
    }
    /// PGD-`steps` with the usual step 2.5 epsilon / steps.
    pub fn pgd(epsilon: f32, steps: usize) -> Self {
        let step_size = 2.5 * epsilon / steps.max(1) as f32;
        Self { kind: AttackKind::Pgd, norm: Norm::Linf, epsilon, step_size, steps, target: None, random_start: None }
    }
}

/// What an attack did.
#[derive(Clone, Debug)]
pub struct AttackOutcome {
    /// The adversarial image `[1, C, H, W]`.
    pub image: Tensor,
    pub clean_probs: Vec<f32>,
    pub probs: Vec<f32>,
    /// The class the attack aimed at (targeted and least-likely attacks).
    pub target: Option<usize>,
    /// Untargeted: the prediction is no longer the label; targeted: it is the target.
    pub success: bool,
    /// The attack's loss after each step (cross-entropy of the label, or of the target).
    pub losses: Vec<f32>,
}

pub(crate) fn check_image(image: &Tensor) -> Result<()> {
    if image.shape().len() != 4 || image.shape()[0] != 1 {
        return Err(Error::InputShape { expected: "one image [1, C, H, W]".into(), found: format!("{:?}", image.shape()) });
    }
    Ok(())
}

/// Runs `spec` on `image` (`[1, C, H, W]`) whose true class is `label`.
pub async fn attack(engine: &Engine, image: &Tensor, label: usize, spec: &AttackSpec) -> Result<AttackOutcome> {
    attack_observed(engine, image, label, spec, &mut |_, _, _, _| {}).await
}

/// Called after each step of an attack: `(step, steps, loss, image)`.
pub type StepObserver<'a> = dyn FnMut(usize, usize, f32, &[f32]) + 'a;

/// [`attack`], calling `observe(step, steps, loss, image)` after each step (steps counted from
/// 1): the loss at the image the step started from, and the image it reached. The images of an
/// attack's first k steps are those of the same attack with `steps = k` (the step size is given,
/// not derived): the explorer scrubs through them.
pub async fn attack_observed(engine: &Engine, image: &Tensor, label: usize, spec: &AttackSpec, observe: &mut StepObserver<'_>) -> Result<AttackOutcome> {
    if let AttackKind::Ensemble { .. } = spec.kind {
        return ensemble_observed(&[engine], image, label, spec, observe).await;
    }
    check_image(image)?;
    let clean_probs = softmax(engine.forward(image).await?.row(0));
    let target = match spec.kind {
        AttackKind::LeastLikely => Some(argmin(&clean_probs)),
        _ => spec.target,
    };
    let (class, sign) = match target {
        Some(t) => (t, -1.0f32), // descend the target's cross-entropy
        None => (label, 1.0),    // ascend the label's
    };
    let (steps, step_size) = match spec.kind {
        AttackKind::Fgsm => (1, spec.epsilon),
        _ => (spec.steps, spec.step_size),
    };
    let x0 = image.data();
    let mut x = x0.to_vec();
    if let Some(seed) = spec.random_start {
        let mut rng = SplitMix::new(seed, 0);
        let delta: Vec<f32> = match spec.norm {
            Norm::Linf => x.iter().map(|_| (rng.range(-1.0, 1.0) * f64::from(spec.epsilon)) as f32).collect(),
            Norm::L2 => {
                let d: Vec<f32> = x.iter().map(|_| rng.range(-1.0, 1.0) as f32).collect();
                let radius = rng.unit() as f32 * spec.epsilon;
                let n = l2(&d).max(1e-12);
                d.iter().map(|v| v / n * radius).collect()
            }
        };
        x.iter_mut().zip(&delta).for_each(|(v, d)| *v += d);
        project(x0, &mut x, spec.norm, spec.epsilon);
    }
    let mut momentum = vec![0f32; x.len()];
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let xt = Tensor::new(image.shape().to_vec(), x.clone())?;
        let g = engine.gradient(&xt, &Objective::CrossEntropy { target: class }, &[]).await?;
        losses.push(g.values[0]);
        let grad: Vec<f32> = g.input.data().iter().map(|v| v * sign).collect();
        let direction: Vec<f32> = match spec.kind {
            AttackKind::MiFgsm { decay } => {
                let n1 = grad.iter().map(|v| v.abs()).sum::<f32>().max(1e-12);
                momentum.iter_mut().zip(&grad).for_each(|(m, g)| *m = decay * *m + g / n1);
                momentum.clone()
            }
            _ => grad,
        };
        match spec.norm {
            Norm::Linf => x.iter_mut().zip(&direction).for_each(|(v, d)| *v += step_size * sign_of(*d)),
            Norm::L2 => {
                let n = l2(&direction).max(1e-12);
                x.iter_mut().zip(&direction).for_each(|(v, d)| *v += step_size * d / n);
            }
        }
        project(x0, &mut x, spec.norm, spec.epsilon);
        observe(losses.len(), steps, g.values[0], &x);
    }
    let adv = Tensor::new(image.shape().to_vec(), x)?;
    let probs = softmax(engine.forward(&adv).await?.row(0));
    let predicted = argmax(&probs);
    let success = match target {
        Some(t) => predicted == t,
        None => predicted != label,
    };
    Ok(AttackOutcome { image: adv, clean_probs, probs, target, success, losses })
}

/// libtorch's `sign`: -1, 0 or 1.
fn sign_of(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

pub(crate) fn argmin(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x < v[best] { i } else { best })
}

fn l2(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Projects `x` onto the `eps` ball around `x0`, then onto [0, 1] (the trainer's order).
pub fn project(x0: &[f32], x: &mut [f32], norm: Norm, eps: f32) {
    match norm {
        Norm::Linf => x.iter_mut().zip(x0).for_each(|(v, o)| *v = o + (*v - o).clamp(-eps, eps)),
        Norm::L2 => {
            let n = x.iter().zip(x0).map(|(v, o)| (v - o) * (v - o)).sum::<f32>().sqrt().max(1e-12);
            let scale = (eps / n).min(1.0);
            x.iter_mut().zip(x0).for_each(|(v, o)| *v = o + (*v - o) * scale);
        }
    }
    x.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the trainer's saved runs and the explorer's messages carry: one vocabulary.
    #[test]
    fn attack_names_in_json_and_on_command_lines() {
        fn json<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap()
        }
        assert_eq!(json(&Norm::Linf), "\"linf\"");
        assert_eq!(json(&AttackKind::LeastLikely), "\"least-likely\"");
        assert_eq!(json(&AttackKind::MiFgsm { decay: 1.0 }), r#"{"mi-fgsm":{"decay":1.0}}"#);
        assert_eq!(serde_json::from_str::<Norm>("\"Linf\"").unwrap(), Norm::Linf, "the older spelling still reads");
        assert_eq!(serde_json::from_str::<AttackKind>("\"pgd\"").unwrap(), AttackKind::Pgd);
        assert_eq!((Norm::parse("inf"), Norm::parse("L2"), Norm::parse("l1")), (Some(Norm::Linf), Some(Norm::L2), None));
        assert_eq!(Norm::L2.label(), "L2");
    }
}
