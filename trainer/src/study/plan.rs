//! A reproduction's plan: the worlds (the dataset and the concept world) of each replicate,
//! the train -> eval -> export, attack and analysis jobs that measure every model, and the
//! results read back from what the jobs wrote.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::preset::{Preset, CONTROL_MODES};
use crate::attack::pgd_step_size;
use crate::data::DatasetKind;
use super::results::ModelResult;
use super::schedule::{Job, Step};
use super::steps::{AnalyzeStep, AttackStep, ConceptsStep, EvalStep, ExportStep, ResumeStep, StepConfig, TrainMode, TrainStep};
use crate::analysis::AnalysisReport;
use crate::eval::EvalReport;

/// One world to reproduce on: a dataset, or the generated concept world.
pub struct World {
    name: String,
    dataset: String,
    data: PathBuf,
    archs: Vec<(&'static str, usize)>,
    /// The training modes of its models: the preset's, or without claim 3's controls for the
    /// concept world (the claims are decided on the dataset; the concept world's detectors
    /// compare the three main modes).
    modes: Vec<&'static str>,
    epochs: usize,
    limit: Option<usize>,
    /// Images per epoch x pixels: the scale of a training job's cost.
    scale: f64,
    /// The replicate's seed: weights, batch order, augmentation, attack starts and targets.
    seed: u64,
}

impl World {
    /// The world's dataset kind (its name was checked when the reproduction started).
    fn kind(&self) -> DatasetKind {
        DatasetKind::parse(&self.dataset).unwrap_or(DatasetKind::Folder)
    }

    fn model(&self, arch: &str, mode: &str) -> String {
        format!("{}-{arch}-{mode}", self.name)
    }

    /// The attack budget of eval and attack steps: the dataset's default, except the concept
    /// world's (a folder of images, whose default the CLI cannot know).
    fn epsilon(&self) -> Option<f64> {
        (self.dataset == "folder").then(|| DatasetKind::Folder.default_epsilon())
    }
}

/// The training mode of a preset's mode name: `consistent-lambda<X>` is the consistent loss with
/// lambda X; `consistent-targeted` with the least-likely-class attack; `consistent-sum` with the
/// paper's squared norm (summed over the features) instead of the mean.
pub fn train_mode(mode: &str) -> TrainMode {
    let consistent = TrainMode { mode: "consistent".into(), lambda: None, attack: None, distance: None };
    match (mode.strip_prefix("consistent-lambda"), mode) {
        (Some(lambda), _) => TrainMode { lambda: Some(lambda.parse().expect("control modes carry a number")), ..consistent },
        (None, "consistent-targeted") => TrainMode { attack: Some("ll".into()), ..consistent },
        (None, "consistent-sum") => TrainMode { distance: Some("sum".into()), ..consistent },
        (None, _) => TrainMode { mode: mode.into(), ..consistent },
    }
}

/// The concept world's generation (data, not a replicate's choice: seed 0, shared).
pub fn concepts_step(p: &Preset, out: &Path) -> StepConfig {
    StepConfig::Concepts(ConceptsStep { train: p.concept_train, test: p.concept_test, seed: 0, out: out.to_path_buf() })
}

/// Relative cost of training `arch` in `mode` (measured on the quick preset, roughly).
fn cost(arch: &str, mode: &str) -> f64 {
    let a = if arch == "small-cnn" { 1.0 } else { 2.0 };
    let m = match mode {
        "standard" => 1.0,
        "pgd" => 2.5,
        _ => 3.0,
    };
    a * m
}

/// The train -> eval -> export job of every model of `w`.
fn training_jobs(p: &Preset, w: &World, out: &Path, threads: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    for mode in &w.modes {
        for (arch, width) in &w.archs {
            let name = w.model(arch, mode);
            let run = out.join("runs").join(&name);
            let bundle = out.join("models").join(&name);
            let mut steps = Vec::new();
            // Few attack steps must still reach the edge of the ball: step = 2.5 eps / steps;
            // epsilon grows over the first quarter of the run so short runs do not collapse.
            let eps = w.kind().default_epsilon();
            let train = TrainStep {
                dataset: w.dataset.clone(),
                data: w.data.clone(),
                arch: arch.to_string(),
                width: *width,
                mode: train_mode(mode),
                attack_steps: p.attack_steps,
                epochs: w.epochs,
                name: name.clone(),
                out: run.clone(),
                seed: w.seed,
                epsilon: eps,
                step_size: pgd_step_size(eps, p.attack_steps),
                epsilon_warmup: w.epochs as f64 / 4.0,
                limit: w.limit,
                threads,
            };
            let epochs_done = std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
            if run.join("last.safetensors").exists() && epochs_done < w.epochs {
                // Interrupted earlier: continue it.
                let resume = ResumeStep { data: w.data.clone(), out: run.clone(), threads };
                steps.push(Step { done: run.join("no-such-marker"), config: StepConfig::Resume(resume) });
            } else if epochs_done < w.epochs {
                steps.push(Step { done: run.join("metrics.jsonl"), config: StepConfig::Train(train) });
            }
            let eval = EvalStep {
                run: run.clone(),
                data: w.data.clone(),
                attacks: vec!["fgsm".into(), "pgd20".into()],
                limit: p.attack_images,
                seed: w.seed,
                epsilon: w.epsilon(),
                threads,
            };
            steps.push(Step { done: run.join("eval.json"), config: StepConfig::Eval(eval) });
            let export = ExportStep { run: run.clone(), data: w.data.clone(), out: bundle.clone(), threads };
            steps.push(Step { done: bundle.join("model.json"), config: StepConfig::Export(export) });
            jobs.push(Job { name, cost: cost(arch, mode) * w.scale * w.epochs as f64, steps });
        }
    }
    jobs
}

/// The ensemble attack of each mode: every architecture but the last, which is held out for
/// transfer.
fn attack_jobs(p: &Preset, w: &World, out: &Path, threads: usize) -> Vec<Job> {
    w.modes
        .iter()
        .map(|mode| {
            let bundle = |arch: &str| out.join("models").join(w.model(arch, mode));
            let (held_out, attacked) = w.archs.split_last().expect("archs");
            let adv = out.join("adversarial").join(format!("{}-{mode}", w.name));
            let attack = AttackStep {
                models: attacked.iter().map(|(a, _)| bundle(a)).collect(),
                held_out: bundle(held_out.0),
                data: w.data.clone(),
                limit: p.attack_images,
                steps: p.ensemble_steps,
                out: adv.clone(),
                seed: w.seed,
                epsilon: w.epsilon(),
                threads,
            };
            Job { name: format!("{}-attack-{mode}", w.name), cost: w.scale, steps: vec![Step { done: adv.join("meta.json"), config: StepConfig::Attack(attack) }] }
        })
        .collect()
}

fn analysis_jobs(p: &Preset, w: &World, out: &Path, threads: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    for mode in &w.modes {
        for (arch, _) in &w.archs {
            let name = w.model(arch, mode);
            let dir = out.join("analysis").join(&name);
            // Equal pools: the real top-K among the same test images whose adversarial versions
            // the attack made (a larger real pool alone would favour real top images).
            let analyze = AnalyzeStep {
                model: out.join("models").join(&name),
                adv: out.join("adversarial").join(format!("{}-{mode}", w.name)),
                data: w.data.clone(),
                limit: p.attack_images,
                atlas: true,
                out: dir.clone(),
                threads,
            };
            jobs.push(Job { name: format!("{name}-analysis"), cost: w.scale, steps: vec![Step { done: dir.join("analysis.json"), config: StepConfig::Analyze(analyze) }] });
        }
    }
    jobs
}

/// What was measured on every model of `w`, from the files the jobs wrote.
pub fn collect(w: &World, out: &Path) -> Result<Vec<ModelResult>> {
    let mut results = Vec::new();
    for mode in &w.modes {
        for (k, (arch, _)) in w.archs.iter().enumerate() {
            let name = w.model(arch, mode);
            let read = |path: PathBuf| std::fs::read(&path).with_context(|| format!("reading {}", path.display()));
            let analysis: AnalysisReport = serde_json::from_slice(&read(out.join("analysis").join(&name).join("analysis.json"))?)?;
            let eval: EvalReport = serde_json::from_slice(&read(out.join("runs").join(&name).join("eval.json"))?)?;
            let clean = eval.rows.iter().find(|r| r.name == "clean").map_or(f64::NAN, |r| r.accuracy);
            let robust = eval.rows.iter().filter(|r| r.name != "clean").map(|r| (format!("{}@{:.4}", r.name, eval.epsilon), r.accuracy)).collect();
            results.push(ModelResult {
                world: w.name.clone(),
                arch: arch.to_string(),
                mode: mode.to_string(),
                seed: w.seed,
                clean_accuracy: clean,
                robust_accuracy: robust,
                attacked: k + 1 < w.archs.len(),
                analysis,
            });
        }
    }
    Ok(results)
}

/// One replicate's jobs, by phase: train/eval/export, ensemble attacks, analyses.
pub fn replicate_jobs(p: &Preset, ws: &[World], dir: &Path, threads: usize) -> [Vec<Job>; 3] {
    [
        ws.iter().flat_map(|w| training_jobs(p, w, dir, threads)).collect(),
        ws.iter().flat_map(|w| attack_jobs(p, w, dir, threads)).collect(),
        ws.iter().flat_map(|w| analysis_jobs(p, w, dir, threads)).collect(),
    ]
}

/// The dataset and (with `concepts`) the concept world, as one replicate trains them.
pub fn worlds(p: &Preset, dataset: &str, data: &Path, concepts: Option<&Path>, seed: u64) -> Vec<World> {
    let side = if dataset == "cifar10" { 32.0 * 32.0 * 3.0 } else { 28.0 * 28.0 };
    let train_images = p.limit.unwrap_or(if dataset == "cifar10" { 50_000 } else { 60_000 }) as f64;
    let concept_archs: Vec<(&'static str, usize)> = p.archs.iter().map(|&(a, w)| (a, w * 2)).collect();
    let main_modes: Vec<&'static str> = p.modes.iter().copied().filter(|m| !CONTROL_MODES.contains(m)).collect();
    let mut ws = vec![World {
        name: dataset.into(),
        dataset: dataset.into(),
        data: data.into(),
        archs: p.archs.clone(),
        modes: p.modes.clone(),
        epochs: p.epochs,
        limit: p.limit,
        scale: train_images * side,
        seed,
    }];
    // Generated by the pipeline, so the reproduction needs no download; wider models for colour images.
    ws.extend(concepts.map(|dir| World {
        name: "concepts".into(),
        dataset: "folder".into(),
        data: dir.to_path_buf(),
        archs: concept_archs,
        modes: main_modes,
        epochs: p.concept_epochs,
        limit: None,
        scale: p.concept_train as f64 * 32.0 * 32.0 * 3.0 * 4.0,
        seed,
    }));
    ws
}

/// How many times to run the pipeline, and from which seed.
#[derive(Clone, Copy, Debug)]
pub struct Replication {
    pub seed: u64,
    pub replicates: usize,
    /// Also train [`CONTROL_MODES`] (claim 3's controls), on the dataset only.
    pub controls: bool,
    /// Also reproduce on the concept world (its concept detectors). Off for studies whose
    /// verdicts read the dataset only: the concept world is most of the quick preset's time.
    pub concepts: bool,
}

impl Replication {
    /// The seeds of the replicates, and where each writes: `out` itself for one replicate
    /// (the layout of earlier reproductions), else `out/seed-<s>/`.
    pub fn runs(&self, out: &Path) -> Vec<(u64, PathBuf)> {
        (0..self.replicates as u64)
            .map(|r| {
                let seed = self.seed + r;
                (seed, if self.replicates == 1 { out.to_path_buf() } else { out.join(format!("seed-{seed}")) })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::preset::{preset, preset_with, CONTROL_MODES};
    use super::*;

    #[test]
    fn replicates_have_their_own_seeds_and_folders() {
        let out = Path::new("/r");
        assert_eq!(Replication { seed: 0, replicates: 1, controls: false, concepts: true }.runs(out), vec![(0, PathBuf::from("/r"))], "one replicate keeps the old layout");
        assert_eq!(Replication { seed: 5, replicates: 2, controls: false, concepts: true }.runs(out), vec![(5, PathBuf::from("/r/seed-5")), (6, PathBuf::from("/r/seed-6"))]);
        // Every step that draws random numbers carries the replicate's seed.
        let p = preset("smoke").unwrap();
        let ws = worlds(&p, "mnist", Path::new("/d"), Some(Path::new("/r/data/concepts")), 6);
        let jobs = training_jobs(&p, &ws[0], Path::new("/r/seed-6"), 1).into_iter().chain(attack_jobs(&p, &ws[0], Path::new("/r/seed-6"), 1));
        let steps: Vec<StepConfig> = jobs.flat_map(|j| j.steps.into_iter().map(|s| s.config)).collect();
        assert!(steps.iter().filter(|s| s.verb() != "export").all(|s| s.seed() == Some(6)), "{steps:?}");
        assert!(steps.iter().any(|s| s.args().windows(2).any(|w| w == ["--seed", "6"])), "the seed reaches the command line");
    }

    #[test]
    fn control_modes_train_the_consistent_loss_with_their_lambda() {
        assert_eq!(train_mode("pgd"), TrainMode { mode: "pgd".into(), lambda: None, attack: None, distance: None });
        assert_eq!(train_mode("consistent-lambda0.1"), TrainMode { mode: "consistent".into(), lambda: Some(0.1), attack: None, distance: None });
        assert_eq!(train_mode("consistent-targeted"), TrainMode { mode: "consistent".into(), lambda: None, attack: Some("ll".into()), distance: None });
        assert_eq!(train_mode("consistent-sum"), TrainMode { mode: "consistent".into(), lambda: None, attack: None, distance: Some("sum".into()) });
        let p = preset_with("smoke", true).unwrap();
        let ws = worlds(&p, "mnist", Path::new("/d"), Some(Path::new("/o/data/concepts")), 0);
        let trains: Vec<TrainStep> = replicate_jobs(&p, &ws, Path::new("/o"), 1)
            .into_iter()
            .flatten()
            .flat_map(|j| j.steps)
            .filter_map(|s| match s.config {
                StepConfig::Train(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(trains.len(), 3 * (3 + CONTROL_MODES.len()) + 3 * 3, "the dataset's three archs x eight modes, the concept world's x three");
        assert!(!trains.iter().any(|t| t.name.starts_with("concepts-") && t.name.contains("-consistent-")), "no controls on the concept world");
        let dataset_only = worlds(&p, "mnist", Path::new("/d"), None, 0);
        assert_eq!(dataset_only.len(), 1);
        assert_eq!(replicate_jobs(&p, &dataset_only, Path::new("/o"), 1)[0].len(), 3 * (3 + CONTROL_MODES.len()));
        let lambda0 = trains.iter().find(|t| t.name == "mnist-resnet-consistent-lambda0").expect("the lambda-0 control");
        assert_eq!(lambda0.mode.lambda, Some(0.0));
        assert!(StepConfig::Train(lambda0.clone()).args().windows(2).any(|w| w == ["--lambda", "0"]));
    }
}
