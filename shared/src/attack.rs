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

/// Which attack.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// The perturbation norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Norm {
    Linf,
    L2,
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

fn check_image(image: &Tensor) -> Result<()> {
    if image.shape().len() != 4 || image.shape()[0] != 1 {
        return Err(Error::InputShape { expected: "one image [1, C, H, W]".into(), found: format!("{:?}", image.shape()) });
    }
    Ok(())
}

/// Runs `spec` on `image` (`[1, C, H, W]`) whose true class is `label`.
pub async fn attack(engine: &Engine, image: &Tensor, label: usize, spec: &AttackSpec) -> Result<AttackOutcome> {
    attack_observed(engine, image, label, spec, &mut |_, _, _| {}).await
}

/// [`attack`], calling `observe(step, steps, loss)` after each step (steps counted from 1) —
/// for a progress bar.
pub async fn attack_observed(engine: &Engine, image: &Tensor, label: usize, spec: &AttackSpec, observe: &mut dyn FnMut(usize, usize, f32)) -> Result<AttackOutcome> {
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
        observe(losses.len(), steps, g.values[0]);
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

fn argmin(v: &[f32]) -> usize {
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

/// The paper's ensemble-optimisation attack (Liu et al. 2017) on one image: Adam on
/// `-log(sum_i w_i softmax_i(x*)[target]) + lambda * mean((x* - x)^2)`, x* kept in [0, 1] and,
/// with `box_epsilon`, in the L-inf box around x.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleSpec {
    pub target: usize,
    /// One weight per model (normalised to sum 1).
    pub weights: Vec<f32>,
    pub lambda: f32,
    pub steps: usize,
    pub learning_rate: f32,
    pub box_epsilon: Option<f32>,
}

/// What the ensemble attack did.
#[derive(Clone, Debug)]
pub struct EnsembleOutcome {
    pub image: Tensor,
    /// The loss before the first step and after each step.
    pub losses: Vec<f32>,
    /// Per model: does it predict the target on the adversarial image?
    pub success: Vec<bool>,
    /// Per model: its probability of the target.
    pub target_probs: Vec<f32>,
}

/// The ensemble loss and its gradient at `x`: with `p_i` each model's target probability and
/// `g_i` the gradient of its cross-entropy `-log p_i`, the gradient of `-log sum w_i p_i` is
/// `sum w_i p_i g_i / sum w_i p_i`.
async fn ensemble_loss(models: &[&Engine], w: &[f32], x: &Tensor, x0: &[f32], spec: &EnsembleSpec) -> Result<(f32, Vec<f32>, Vec<f32>)> {
    let n = x.len() as f32;
    let mut mix = 0f32;
    let mut grad = vec![0f32; x.len()];
    let mut probs = Vec::with_capacity(models.len());
    for (engine, &wi) in models.iter().zip(w) {
        let g = engine.gradient(x, &Objective::CrossEntropy { target: spec.target }, &[]).await?;
        let p = (-g.values[0]).exp();
        probs.push(p);
        mix += wi * p;
        grad.iter_mut().zip(g.input.data()).for_each(|(a, gi)| *a += wi * p * gi);
    }
    let mix = mix.max(1e-30);
    let dist: f32 = x.data().iter().zip(x0).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / n;
    grad.iter_mut().zip(x.data()).zip(x0).for_each(|((g, a), b)| *g = *g / mix + spec.lambda * 2.0 * (a - b) / n);
    Ok((-mix.ln() + spec.lambda * dist, grad, probs))
}

/// Runs the ensemble attack on `image` against `models`.
pub async fn ensemble_attack(models: &[&Engine], image: &Tensor, spec: &EnsembleSpec) -> Result<EnsembleOutcome> {
    check_image(image)?;
    if models.is_empty() || spec.weights.len() != models.len() {
        return Err(Error::InputShape { expected: format!("one weight per model ({})", models.len()), found: format!("{} weights", spec.weights.len()) });
    }
    let total: f32 = spec.weights.iter().sum();
    let w: Vec<f32> = spec.weights.iter().map(|v| v / total.max(1e-12)).collect();
    let x0 = image.data().to_vec();
    let mut x = x0.clone();
    let (mut m, mut v) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut losses = Vec::with_capacity(spec.steps + 1);
    for t in 1..=spec.steps {
        let xt = Tensor::new(image.shape().to_vec(), x.clone())?;
        let (loss, grad, _) = ensemble_loss(models, &w, &xt, &x0, spec).await?;
        losses.push(loss);
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        for i in 0..x.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
            x[i] -= spec.learning_rate * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        }
        match spec.box_epsilon {
            Some(e) => project(&x0, &mut x, Norm::Linf, e),
            None => x.iter_mut().for_each(|p| *p = p.clamp(0.0, 1.0)),
        }
    }
    let adv = Tensor::new(image.shape().to_vec(), x)?;
    let (loss, _, target_probs) = ensemble_loss(models, &w, &adv, &x0, spec).await?;
    losses.push(loss);
    let mut success = Vec::with_capacity(models.len());
    for engine in models {
        success.push(argmax(engine.forward(&adv).await?.row(0)) == spec.target);
    }
    Ok(EnsembleOutcome { image: adv, losses, success, target_probs })
}
