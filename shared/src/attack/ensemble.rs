//! The paper's ensemble-optimisation attack (Liu et al. 2017) on one image, against several
//! engines at once.

use super::{check_image, project, Norm};
use crate::engine::{Engine, Objective};
use crate::tensor::argmax;
use crate::{Error, Result, Tensor};

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
