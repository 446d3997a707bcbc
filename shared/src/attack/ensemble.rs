//! The paper's ensemble-optimisation attack (Liu et al. 2017) on one image, against several
//! engines at once.

use super::{argmin, check_image, project, AttackKind, AttackOutcome, AttackSpec, Norm, StepObserver};
use crate::engine::{Engine, Objective};
use crate::tensor::{argmax, softmax};
use crate::{Error, Result, Tensor};

/// Adam's learning rate (pixel units) when none is given: `advlens attack`'s and the page's.
pub const ENSEMBLE_LEARNING_RATE: f32 = 0.01;

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
    let (adv, mut losses, w) = run(models, image, spec, &mut |_, _, _, _| {}).await?;
    let (loss, _, target_probs) = ensemble_loss(models, &w, &adv, image.data(), spec).await?;
    losses.push(loss);
    let mut success = Vec::with_capacity(models.len());
    for engine in models {
        success.push(argmax(engine.forward(&adv).await?.row(0)) == spec.target);
    }
    Ok(EnsembleOutcome { image: adv, losses, success, target_probs })
}

/// The ensemble attack as one of the page's attacks ([`AttackKind::Ensemble`]): `spec`'s steps,
/// step size (Adam's learning rate) and epsilon (the L-inf box) against `models` weighted
/// equally, aimed at `spec.target` or else at the class `models[0]` finds least likely. The
/// outcome's probabilities and success are `models[0]`'s; `observe` sees every step, and the
/// first k steps are those of the same attack with `steps = k` (Adam does not look ahead).
pub async fn ensemble_observed(models: &[&Engine], image: &Tensor, _label: usize, spec: &AttackSpec, observe: &mut StepObserver<'_>) -> Result<AttackOutcome> {
    let AttackKind::Ensemble { lambda } = spec.kind else {
        return Err(Error::InputShape { expected: "the ensemble attack".into(), found: format!("{:?}", spec.kind) });
    };
    if spec.norm != Norm::Linf {
        return Err(Error::InputShape { expected: "an L-inf box for the ensemble attack".into(), found: format!("{:?}", spec.norm) });
    }
    let first = models.first().ok_or_else(|| Error::InputShape { expected: "at least one model".into(), found: "none".into() })?;
    check_image(image)?;
    let clean_probs = softmax(first.forward(image).await?.row(0));
    let target = spec.target.unwrap_or_else(|| argmin(&clean_probs));
    let ensemble = EnsembleSpec { target, weights: vec![1.0; models.len()], lambda, steps: spec.steps, learning_rate: spec.step_size, box_epsilon: Some(spec.epsilon) };
    let (adv, losses, _) = run(models, image, &ensemble, observe).await?;
    let probs = softmax(first.forward(&adv).await?.row(0));
    let success = argmax(&probs) == target;
    Ok(AttackOutcome { image: adv, clean_probs, probs, target: Some(target), success, losses })
}

/// The Adam steps: the adversarial image, the loss at the start of each step, and the
/// normalised weights.
async fn run(models: &[&Engine], image: &Tensor, spec: &EnsembleSpec, observe: &mut StepObserver<'_>) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
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
        observe(t, spec.steps, loss, &x);
    }
    Ok((Tensor::new(image.shape().to_vec(), x)?, losses, w))
}
