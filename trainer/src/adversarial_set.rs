//! `advlens attack`: adversarial versions of a dataset split, batched on libtorch — the paper's
//! ensemble-optimisation attack (Liu et al. 2017) over several models, or a single-model attack —
//! written to disk with source and target labels and each model's verdict.
//!
//! Output folder: `images.safetensors` (`adversarial` f32 `[N,C,H,W]` in [0,1]) and
//! `meta.json` ([`AdversarialSet`] without the images).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::attack::{Attack, BatchPart};
use crate::dist::Team;
use crate::net::{images_tensor, Net};

/// The ensemble attack's settings (the single-image version is `advlens_shared::attack`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnsembleConfig {
    /// Weight of each model (normalised).
    pub weights: Vec<f64>,
    /// Weight of the distance term `mean((x* - x)^2)`.
    pub lambda: f64,
    pub steps: usize,
    pub learning_rate: f64,
    /// Optional L-inf box around the image.
    pub box_epsilon: Option<f64>,
}

/// `-log(sum_i w_i softmax_i(x*)[t]) + lambda * mean((x* - x)^2)` per image, `[N]`.
pub fn ensemble_loss(nets: &[&Net], weights: &[f64], x_adv: &Tensor, x: &Tensor, targets: &Tensor, lambda: f64) -> Tensor {
    let total: f64 = weights.iter().sum();
    let per_model: Vec<Tensor> = nets
        .iter()
        .zip(weights)
        .map(|(net, w)| net.forward(x_adv).log_softmax(-1, Kind::Float).gather(1, &targets.unsqueeze(1), false).squeeze_dim(1) + (w / total).ln())
        .collect();
    let log_mix = Tensor::stack(&per_model, 0).logsumexp([0i64].as_slice(), false);
    let dist = (x_adv - x).square().flatten(1, -1).mean_dim([1i64].as_slice(), false, Kind::Float);
    -log_mix + dist * lambda
}

/// Adam on the adversarial images, kept in [0, 1] (and in the box).
pub fn ensemble_attack(nets: &[&Net], x: &Tensor, targets: &Tensor, cfg: &EnsembleConfig) -> Tensor {
    let x = x.detach();
    let mut xa = x.copy();
    let (mut m, mut v) = (x.zeros_like(), x.zeros_like());
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    for t in 1..=cfg.steps {
        let xr = xa.detach().set_requires_grad(true);
        let loss = ensemble_loss(nets, &cfg.weights, &xr, &x, targets, cfg.lambda).sum(Kind::Float);
        let g = Tensor::run_backward(&[loss], &[&xr], false, false).pop().expect("one gradient");
        tch::no_grad(|| {
            m = &m * b1 + &g * (1.0 - b1);
            v = &v * b2 + g.square() * (1.0 - b2);
            let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
            xa = &xa - (&m / c1) / ((&v / c2).sqrt() + eps) * cfg.learning_rate;
            xa = match cfg.box_epsilon {
                Some(e) => (&x + (&xa - &x).clamp(-e, e)).clamp(0.0, 1.0),
                None => xa.clamp(0.0, 1.0),
            };
        });
    }
    xa.detach()
}

/// How the targets of a targeted attack are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetRule {
    /// A seeded random class other than the true one.
    Random,
    /// The class the first model finds least likely.
    LeastLikely,
}

/// What was attacked, how, and with what result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdversarialSet {
    pub dataset: String,
    pub split: String,
    /// Description of the attack.
    pub attack: String,
    pub models: Vec<String>,
    pub held_out: Vec<String>,
    /// Dataset indices of the attacked images.
    pub indices: Vec<usize>,
    pub source: Vec<usize>,
    /// Target class per image (`None` for untargeted attacks).
    pub target: Option<Vec<usize>>,
    /// `predicted[model][image]`: each model's (attacked and held-out, in that order) prediction.
    pub predicted: Vec<Vec<usize>>,
    /// Per model: the fraction of images where the attack succeeded (targeted: prediction =
    /// target; untargeted: prediction != source).
    pub success_rate: Vec<f64>,
    pub linf: f64,
}

/// Runs `attack` (an ensemble attack when `ensemble` is given, else `single` on the first model)
/// over `pixels` (`[N, C, H, W]` bytes) in batches. Random targets and random starts are drawn
/// from (`seed`, batch), so with a `team` the ranks can take the batches in turn and merge
/// their rows into exactly one process's result.
#[allow(clippy::too_many_arguments)]
pub fn attack_set(
    nets: &[&Net],
    held_out: &[&Net],
    pixels: &[u8],
    shape: [usize; 3],
    labels: &[usize],
    ensemble: Option<&EnsembleConfig>,
    single: Option<&Attack>,
    target_rule: Option<TargetRule>,
    seed: u64,
    batch_size: usize,
    device: Device,
    bar: &ProgressBar,
    team: Option<&Team>,
) -> Result<(Tensor, Vec<Option<usize>>, Vec<Vec<usize>>)> {
    let n = labels.len();
    let per = shape.iter().product::<usize>();
    let classes = nets[0].spec().classes.len() as i64;
    let mut out = Vec::new();
    let mut targets_all = Vec::with_capacity(n);
    let mut predicted = vec![Vec::with_capacity(n); nets.len() + held_out.len()];
    bar.set_length(n as u64);
    let mut done = Vec::new();
    for (k, start) in (0..n).step_by(batch_size.max(1)).enumerate() {
        let len = (n - start).min(batch_size.max(1));
        if team.is_some_and(|t| !t.owns(k)) {
            continue;
        }
        done.push((start, len));
        tch::manual_seed(crate::data::batches::SplitMix::derive(seed, 98, start as u64).next_u64() as i64 & i64::MAX);
        let x = images_tensor(&pixels[start * per..(start + len) * per], shape, device);
        let y = Tensor::from_slice(&labels[start..start + len].iter().map(|&l| l as i64).collect::<Vec<_>>()).to_device(device);
        let targets = match target_rule {
            None => None,
            Some(TargetRule::LeastLikely) => Some(tch::no_grad(|| nets[0].forward(&x).argmin(-1, false))),
            Some(TargetRule::Random) => {
                let mut rng = crate::data::batches::SplitMix::derive(seed, 99, start as u64);
                let t: Vec<i64> = labels[start..start + len]
                    .iter()
                    .map(|&l| (l as i64 + 1 + (rng.below(classes as usize - 1) as i64)) % classes)
                    .collect();
                Some(Tensor::from_slice(&t).to_device(device))
            }
        };
        let xa = match (ensemble, single) {
            (Some(cfg), _) => {
                let t = targets.as_ref().context("the ensemble attack is targeted: give a target rule")?;
                ensemble_attack(nets, &x, t, cfg)
            }
            (None, Some(attack)) => match &targets {
                Some(t) => attack.iterate(nets[0], &x, t, true, BatchPart::whole(&x)),
                None => attack.perturb(nets[0], &x, &y),
            },
            (None, None) => bail!("no attack given"),
        };
        for (k, net) in nets.iter().chain(held_out).enumerate() {
            let p = tch::no_grad(|| net.forward(&xa).argmax(-1, false));
            predicted[k].extend(Vec::<i64>::try_from(&p.to_device(Device::Cpu))?.into_iter().map(|v| v as usize));
        }
        match &targets {
            Some(t) => targets_all.extend(Vec::<i64>::try_from(&t.to_device(Device::Cpu))?.into_iter().map(|v| Some(v as usize))),
            None => targets_all.extend(std::iter::repeat_n(None, len)),
        }
        out.push(xa.to_device(Device::Cpu));
        bar.inc(len as u64);
    }
    let Some(team) = team else {
        return Ok((Tensor::cat(&out, 0), targets_all, predicted));
    };
    // Scatter this rank's batches into whole-set tensors (zeros elsewhere) and sum over the
    // ranks: every row comes from the one rank that computed it. Targets are stored + 1 (0: none).
    let [c, h, w] = shape.map(|d| d as i64);
    let images = Tensor::zeros([n as i64, c, h, w], (Kind::Float, Device::Cpu));
    let rows = Tensor::zeros([1 + predicted.len() as i64, n as i64], (Kind::Int64, Device::Cpu));
    let mut at = 0;
    for ((start, len), xa) in done.iter().zip(&out) {
        images.narrow(0, *start as i64, *len as i64).copy_(xa);
        let t: Vec<i64> = targets_all[at..at + len].iter().map(|t| t.map_or(0, |t| t as i64 + 1)).collect();
        rows.get(0).narrow(0, *start as i64, *len as i64).copy_(&Tensor::from_slice(&t));
        for (m, p) in predicted.iter().enumerate() {
            let p: Vec<i64> = p[at..at + len].iter().map(|&v| v as i64).collect();
            rows.get(1 + m as i64).narrow(0, *start as i64, *len as i64).copy_(&Tensor::from_slice(&p));
        }
        at += len;
    }
    team.sum_tensors(&[&images, &rows])?;
    let rows = Vec::<i64>::try_from(&rows.flatten(0, -1))?;
    let mut chunks = rows.chunks(n);
    let targets = chunks.next().expect("the target row").iter().map(|&t| (t > 0).then(|| (t - 1) as usize)).collect();
    let predicted = chunks.map(|r| r.iter().map(|&v| v as usize).collect()).collect();
    Ok((images, targets, predicted))
}

/// Per model, the share of images whose attack succeeded: the model predicts the target, or
/// (untargeted) anything but the true label.
pub fn success_rates(predicted: &[Vec<usize>], labels: &[usize], targets: &[Option<usize>]) -> Vec<f64> {
    predicted
        .iter()
        .map(|p| {
            let hits = p.iter().zip(labels).zip(targets).filter(|((&pr, &l), t)| match t { Some(t) => pr == *t, None => pr != l }).count();
            hits as f64 / labels.len().max(1) as f64
        })
        .collect()
}

/// Writes `images` (f32 `[N,C,H,W]`) and `meta` into `dir`.
pub fn save(dir: &Path, images: &Tensor, meta: &AdversarialSet) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let shape: Vec<usize> = images.size().iter().map(|&d| d as usize).collect();
    let data = Vec::<f32>::try_from(images.flatten(0, -1).to_kind(Kind::Float))?;
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, shape, &bytes)?;
    let file = safetensors::serialize([("adversarial", view)], None::<HashMap<String, String>>)?;
    std::fs::write(dir.join("images.safetensors"), file).with_context(|| format!("writing {}", dir.join("images.safetensors").display()))?;
    std::fs::write(dir.join("meta.json"), serde_json::to_string_pretty(meta)? + "\n").with_context(|| format!("writing {}", dir.join("meta.json").display()))?;
    Ok(())
}

/// Reads a set written by [`save`].
pub fn load(dir: &Path) -> Result<(Tensor, AdversarialSet)> {
    let meta_path = dir.join("meta.json");
    let meta: AdversarialSet = serde_json::from_slice(&std::fs::read(&meta_path).with_context(|| format!("reading {}: is this an `advlens attack` output?", meta_path.display()))?)
        .with_context(|| format!("reading {}", meta_path.display()))?;
    let path = dir.join("images.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let view = st.tensor("adversarial").with_context(|| format!("{} has no `adversarial` tensor", path.display()))?;
    let data: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    if shape.first().copied() != Some(meta.indices.len() as i64) {
        bail!("{}: {} images but meta.json lists {}", path.display(), shape.first().copied().unwrap_or(0), meta.indices.len());
    }
    Ok((Tensor::from_slice(&data).view(shape.as_slice()), meta))
}

#[cfg(test)]
mod tests {
    use super::success_rates;

    #[test]
    fn success_is_the_target_when_targeted_and_any_other_class_otherwise() {
        let labels = [1, 0, 3, 2];
        let targets = [Some(2), Some(2), None, None];
        // Model A: hits the first target, misses the second, leaves image 2 right, flips image 3.
        let a = vec![2, 0, 3, 1];
        // Model B: every prediction the true label.
        let b = labels.to_vec();
        assert_eq!(success_rates(&[a, b], &labels, &targets), vec![0.5, 0.0]);
        assert_eq!(success_rates(&[vec![]], &[], &[]), vec![0.0], "no images: no success, no NaN");
    }
}
