//! `advlens eval`: clean and robust accuracy, overall and per class.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::attack::{Attack, AttackKind, Norm};
use crate::data::batches::SplitMix;
use crate::data::Dataset;
use crate::dist::Team;
use crate::net::{images_tensor, Net};

/// An attack named on the command line: `fgsm`, `pgdN` (N steps, random start) or `ll`.
pub fn named_attack(name: &str, norm: Norm, epsilon: f64) -> Result<Attack> {
    if name == "fgsm" {
        return Ok(Attack { kind: AttackKind::Fgsm, norm, epsilon, step_size: epsilon, steps: 1, random_start: false });
    }
    if name == "ll" {
        // Kurakin et al.: alpha = 1/255, min(eps*255 + 4, 1.25 eps*255) steps.
        let e = epsilon * 255.0;
        let steps = ((e + 4.0).min(1.25 * e)).ceil().max(1.0) as usize;
        return Ok(Attack { kind: AttackKind::LeastLikely, norm, epsilon, step_size: 1.0 / 255.0, steps, random_start: false });
    }
    if let Some(steps) = name.strip_prefix("pgd").and_then(|s| s.parse::<usize>().ok()).filter(|&s| s > 0) {
        let step_size = crate::attack::pgd_step_size(epsilon, steps);
        return Ok(Attack { kind: AttackKind::Pgd, norm, epsilon, step_size, steps, random_start: true });
    }
    bail!("unknown attack `{name}`: use fgsm, ll or pgdN (e.g. pgd20, pgd100)")
}

/// Accuracy of one condition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccuracyRow {
    /// `clean`, or the attack's name (`fgsm`, `pgd20`, ...).
    pub name: String,
    pub attack: Option<Attack>,
    pub accuracy: f64,
    /// `None` for a class with no test image among those evaluated.
    pub per_class: Vec<Option<f64>>,
}

/// What `advlens eval` reports (and writes as `eval.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    pub model: String,
    pub dataset: String,
    pub images: usize,
    pub norm: Norm,
    pub epsilon: f64,
    /// Random restarts of the PGD attacks: an image counts as robust only if every restart fails.
    pub restarts: usize,
    pub classes: Vec<String>,
    pub rows: Vec<AccuracyRow>,
}

impl EvalReport {
    /// A fixed-width table: one line per condition, one column per class.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} on {} ({} test images, {:?} eps={}, {} restart(s))",
            self.model, self.dataset, self.images, self.norm, self.epsilon, self.restarts
        );
        let _ = write!(out, "{:<10} {:>8}", "attack", "all");
        for c in &self.classes {
            let _ = write!(out, " {:>8}", truncate(c, 8));
        }
        out.push('\n');
        for row in &self.rows {
            let _ = write!(out, "{:<10} {:>7.2}%", row.name, 100.0 * row.accuracy);
            for a in &row.per_class {
                match a {
                    Some(a) => write!(out, " {:>7.1}%", 100.0 * a),
                    None => write!(out, " {:>8}", "-"),
                }
                .expect("writing to a String");
            }
            out.push('\n');
        }
        out
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Evaluates `net` on the first `limit` images of `data` under each of `attacks`. Random starts
/// come from libtorch's generator, reseeded from (`seed`, batch) before each batch. With a
/// `team`, the ranks take the batches in turn and merge which images held: the same result as
/// one process.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    net: &Net,
    data: &Dataset,
    attacks: &[(String, Attack)],
    restarts: usize,
    limit: Option<usize>,
    batch_size: usize,
    seed: u64,
    device: Device,
    bar: &ProgressBar,
    team: Option<&Team>,
) -> Result<Vec<AccuracyRow>> {
    let n = limit.map_or(data.len(), |l| l.min(data.len()));
    if n == 0 {
        bail!("no test images to evaluate on");
    }
    let classes = net.spec().classes.len();
    let per_image = data.shape.iter().product::<usize>();
    let labels_all: Vec<i64> = data.labels[..n].iter().map(|&l| i64::from(l)).collect();
    let mut correct = vec![vec![false; n]; attacks.len() + 1];
    bar.set_length(n as u64);
    for (k, start) in (0..n).step_by(batch_size.max(1)).enumerate() {
        let len = (n - start).min(batch_size.max(1));
        if team.is_some_and(|t| !t.owns(k)) {
            continue;
        }
        tch::manual_seed(SplitMix::derive(seed, 0xE7A1, start as u64).next_u64() as i64 & i64::MAX);
        let x = images_tensor(&data.images[start * per_image..(start + len) * per_image], data.shape, device);
        let y = Tensor::from_slice(&labels_all[start..start + len]).to_device(device);
        let clean = tch::no_grad(|| net.forward(&x).argmax(-1, false).eq_tensor(&y));
        let clean_ok: Vec<bool> = Vec::<bool>::try_from(&clean.to_kind(Kind::Bool).to_device(Device::Cpu))?;
        correct[0][start..start + len].copy_from_slice(&clean_ok);
        for (a, (_, attack)) in attacks.iter().enumerate() {
            let tries = if attack.random_start { restarts.max(1) } else { 1 };
            let mut ok = clean.shallow_clone();
            for _ in 0..tries {
                let x_adv = attack.perturb(net, &x, &y);
                let hit = tch::no_grad(|| net.forward(&x_adv).argmax(-1, false).eq_tensor(&y));
                ok = ok.logical_and(&hit);
            }
            let ok: Vec<bool> = Vec::<bool>::try_from(&ok.to_kind(Kind::Bool).to_device(Device::Cpu))?;
            correct[a + 1][start..start + len].copy_from_slice(&ok);
        }
        bar.inc(len as u64);
    }
    if let Some(team) = team {
        // Each image was evaluated by one rank: the sum of the ranks' 0/1 rows is the whole.
        let flat: Vec<i64> = correct.iter().flatten().map(|&ok| i64::from(ok)).collect();
        let merged = Tensor::from_slice(&flat);
        team.sum_tensors(&[&merged])?;
        let merged = Vec::<i64>::try_from(&merged)?;
        for (row, chunk) in correct.iter_mut().zip(merged.chunks(n)) {
            for (ok, &v) in row.iter_mut().zip(chunk) {
                *ok = v != 0;
            }
        }
    }
    let names = std::iter::once(("clean".to_string(), None)).chain(attacks.iter().map(|(n, a)| (n.clone(), Some(a.clone()))));
    Ok(names
        .zip(&correct)
        .map(|((name, attack), ok)| {
            let mut per = vec![(0usize, 0usize); classes];
            for (i, &good) in ok.iter().enumerate() {
                let c = labels_all[i] as usize;
                per[c].1 += 1;
                per[c].0 += usize::from(good);
            }
            AccuracyRow {
                name,
                attack,
                accuracy: ok.iter().filter(|&&g| g).count() as f64 / n as f64,
                per_class: per.iter().map(|&(g, t)| (t > 0).then(|| g as f64 / t as f64)).collect(),
            }
        })
        .collect())
}
