//! `advlens perturb`: one image attacked by the shared engine's attacks — the code, names,
//! defaults and seeds the explorer runs in the page, so a page URL and this command give the
//! same adversarial image (the explorer's end-to-end test checks it to 1e-4).

use std::path::Path;

use advlens_shared::attack::{attack_observed, ensemble_observed, AttackChoice, AttackKind, AttackSpec};
use advlens_shared::engine::Engine;
use advlens_shared::model::{Bundle, SampleSet, SAMPLES_FILE};
use advlens_shared::tensor::{argmax, softmax};
use advlens_shared::Tensor;
use anyhow::{bail, Context, Result};
use serde::Serialize;

/// The image `[1, C, H, W]` from a file or the bundle's `sample`, with its label when known.
pub fn one_image(model_dir: &Path, bundle: &Bundle, image: Option<&Path>, sample: Option<usize>) -> Result<(Tensor, Option<usize>)> {
    let [c, h, w] = bundle.input_shape();
    match (image, sample) {
        (Some(path), _) => {
            if !path.is_file() {
                bail!("--image {}: no such file", path.display());
            }
            let pixels = crate::data::folder::decode(path, c, h)?;
            Ok((Tensor::from_u8_images(vec![1, c, h, w], &pixels)?, None))
        }
        (None, Some(k)) => {
            let path = model_dir.join(SAMPLES_FILE);
            let set = SampleSet::from_json(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)?;
            let Some(s) = set.samples.get(k) else { bail!("--sample {k}: the bundle has {} samples (numbered from 0)", set.samples.len()) };
            Ok((Tensor::from_u8_images(vec![1, c, h, w], &s.pixels)?, Some(s.label)))
        }
        (None, None) => bail!("pass --image FILE or --sample N"),
    }
}

/// An attack as the command line (or a page URL) names it; `None`s take the defaults.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub choice: AttackChoice,
    pub epsilon: Option<f32>,
    pub steps: usize,
    pub step_size: Option<f32>,
    pub target: Option<usize>,
    pub seed: Option<u64>,
}

impl Request {
    /// Every number decided, as the explorer decides it ([`AttackChoice::spec`]); the model's
    /// budget when none is given.
    pub fn resolve(&self, bundle: &Bundle) -> Result<AttackSpec> {
        let classes = bundle.classes().len();
        let epsilon = self.epsilon.unwrap_or_else(|| bundle.spec().provenance.attack_epsilon().map_or(advlens_shared::attack::DEFAULT_EPSILON, |e| e as f32));
        let norm = if self.choice == AttackChoice::PgdL2 { crate::attack::Norm::L2 } else { crate::attack::Norm::Linf };
        crate::params::budget("--epsilon", f64::from(epsilon), norm)?;
        crate::params::count("--steps", self.steps)?;
        if let Some(t) = self.target.filter(|&t| t >= classes) {
            bail!("--target {t}: the model has {classes} classes (numbered from 0)");
        }
        let mut spec = self.choice.spec(epsilon, self.steps, self.target, self.seed);
        if let Some(s) = self.step_size {
            crate::params::positive("--step-size", f64::from(s))?;
            spec.step_size = s;
        }
        Ok(spec)
    }
}

/// What the attack did, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Perturbed {
    pub attack: String,
    pub spec: AttackSpec,
    pub label: usize,
    pub clean_probabilities: Vec<f32>,
    pub probabilities: Vec<f32>,
    pub predicted: usize,
    pub success: bool,
    pub target: Option<usize>,
    pub losses: Vec<f32>,
    /// The adversarial image, CHW in [0, 1].
    pub image: Vec<f32>,
    /// With `every_step`: the image after each step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Vec<f32>>,
    /// The ensemble attack's other models (`--with`): their predictions on the adversarial image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ensemble: Vec<Transfer>,
    /// Held-out models' predictions on the adversarial image (the attack transferred).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transfer: Vec<Transfer>,
}

/// Another model's prediction on the adversarial image (held out, or in the ensemble).
#[derive(Debug, Serialize)]
pub struct Transfer {
    pub model: String,
    pub probabilities: Vec<f32>,
    pub predicted: usize,
    /// Untargeted: it no longer predicts the label; targeted: it predicts the target.
    pub fooled: bool,
}

/// Each named engine's prediction on `p`'s adversarial image.
pub fn judge(p: &Perturbed, engines: &[(String, Engine)]) -> Result<Vec<Transfer>> {
    let mut out = Vec::with_capacity(engines.len());
    for (name, engine) in engines {
        let shape = engine.bundle().input_shape();
        let image = Tensor::new(vec![1, shape[0], shape[1], shape[2]], p.image.clone())?;
        let probabilities = softmax(pollster::block_on(engine.forward(&image))?.row(0));
        let predicted = argmax(&probabilities);
        let fooled = match p.target {
            Some(t) => predicted == t,
            None => predicted != p.label,
        };
        out.push(Transfer { model: name.clone(), probabilities, predicted, fooled });
    }
    Ok(out)
}

/// Attacks `image` on `engine` (with the models `with`, for the ensemble attack), away from
/// `label` (default: the predicted class) or towards the spec's target, showing the steps on `bar`.
pub fn perturb(engine: &Engine, with: &[&Engine], image: &Tensor, label: Option<usize>, spec: &AttackSpec, every_step: bool, bar: &indicatif::ProgressBar) -> Result<Perturbed> {
    let label = match label {
        Some(l) => l,
        None => argmax(softmax(pollster::block_on(engine.forward(image))?.row(0)).as_slice()),
    };
    let mut steps = Vec::new();
    let mut observe = |done: usize, total: usize, _: f32, x: &[f32]| {
        if every_step {
            steps.push(x.to_vec());
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let outcome = match spec.kind {
        AttackKind::Ensemble { .. } => {
            let models: Vec<&Engine> = std::iter::once(engine).chain(with.iter().copied()).collect();
            pollster::block_on(ensemble_observed(&models, image, label, spec, &mut observe))?
        }
        _ if !with.is_empty() => bail!("only the ensemble attack runs on several models"),
        _ => pollster::block_on(attack_observed(engine, image, label, spec, &mut observe))?,
    };
    bar.finish_and_clear();
    let classes = engine.bundle().classes().to_vec();
    Ok(Perturbed {
        attack: spec.describe(|c| classes.get(c).cloned().unwrap_or_else(|| c.to_string())),
        spec: spec.clone(),
        label,
        predicted: argmax(&outcome.probs),
        clean_probabilities: outcome.clean_probs,
        probabilities: outcome.probs,
        success: outcome.success,
        target: outcome.target,
        losses: outcome.losses,
        image: outcome.image.into_data(),
        steps,
        ensemble: Vec::new(),
        transfer: Vec::new(),
    })
}

/// The result for people.
pub fn describe(p: &Perturbed, classes: &[String]) -> String {
    let name = |c: usize| classes.get(c).cloned().unwrap_or_else(|| format!("class {c}"));
    let before = argmax(&p.clean_probabilities);
    let verdict = if p.success { "succeeded" } else { "failed: the model resisted" };
    let mut text = format!(
        "{}\nbefore: {} ({:.1}%), true class {}\nafter:  {} ({:.1}%)\nthe attack {verdict}\n",
        p.attack,
        name(before),
        100.0 * p.clean_probabilities[before],
        name(p.label),
        name(p.predicted),
        100.0 * p.probabilities[p.predicted],
    );
    for t in &p.ensemble {
        let how = if t.fooled { "fooled too" } else { "not fooled" };
        text += &format!("in the ensemble, {}: {} ({:.1}%), {how}\n", t.model, name(t.predicted), 100.0 * t.probabilities[t.predicted]);
    }
    for t in &p.transfer {
        let how = if t.fooled { "fooled too: the attack transfers" } else { "not fooled" };
        text += &format!("{}: {} ({:.1}%), {how}\n", t.model, name(t.predicted), 100.0 * t.probabilities[t.predicted]);
    }
    text
}

/// Writes the image (`[C, H, W]` values in [0, 1]) as an 8-bit PNG.
pub fn png(pixels: &[f32], [c, h, w]: [usize; 3], out: &Path) -> Result<()> {
    let byte = |v: f32| (255.0 * v.clamp(0.0, 1.0)).round() as u8;
    let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let at = |ch: usize| byte(pixels[ch.min(c - 1) * h * w + y as usize * w + x as usize]);
        image::Rgb([at(0), at(1), at(2)])
    });
    img.save(out).with_context(|| format!("writing {}", out.display()))
}
