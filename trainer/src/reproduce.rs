//! `advlens reproduce`: the paper's pipeline end to end — train three architectures in
//! standard, pgd and consistent modes, ensemble-attack each mode's models (one architecture held
//! out for transfer), analyse every model, repeat on the concept world for concept IoU, and write
//! a report that says, claim by claim, whether the paper's findings held on our data.
//!
//! Each step runs this same binary's subcommands and is skipped when its output exists, so an
//! interrupted reproduction continues where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use plotters::prelude::*;
use serde::Serialize;

use crate::analysis::AnalysisReport;
use crate::eval::EvalReport;

/// What a preset trains and attacks.
pub struct Preset {
    pub archs: Vec<(&'static str, usize)>,
    pub modes: Vec<&'static str>,
    pub limit: Option<usize>,
    pub epochs: usize,
    pub attack_steps: usize,
    pub attack_images: usize,
    pub ensemble_steps: usize,
    pub concept_train: usize,
    pub concept_test: usize,
    pub concept_epochs: usize,
}

pub fn preset(name: &str) -> Result<Preset> {
    Ok(match name {
        "quick" => Preset {
            archs: vec![("small-cnn", 16), ("alexnet", 16), ("resnet", 8)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: Some(10_000),
            epochs: 2,
            attack_steps: 5,
            attack_images: 500,
            ensemble_steps: 50,
            concept_train: 6_000,
            concept_test: 500,
            concept_epochs: 4,
        },
        // For tests of the pipeline itself: minutes, not results.
        "smoke" => Preset {
            archs: vec![("small-cnn", 4), ("alexnet", 4), ("resnet", 4)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: Some(600),
            epochs: 1,
            attack_steps: 2,
            attack_images: 60,
            ensemble_steps: 10,
            concept_train: 300,
            concept_test: 60,
            concept_epochs: 1,
        },
        "full" => Preset {
            archs: vec![("alexnet", 32), ("vgg", 32), ("resnet", 32)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: None,
            epochs: 20,
            attack_steps: 20,
            attack_images: 5_000,
            ensemble_steps: 100,
            concept_train: 20_000,
            concept_test: 2_000,
            concept_epochs: 20,
        },
        other => bail!("unknown preset `{other}`: use quick or full (or smoke, to test the pipeline)"),
    })
}

/// This binary's path. Linux reports `<path> (deleted)` once the file was replaced (e.g. by a
/// rebuild during a long reproduction); the replacement at the same path is what to run then.
fn advlens_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the advlens binary")?;
    if exe.exists() {
        return Ok(exe);
    }
    let text = exe.to_string_lossy();
    let stripped = PathBuf::from(text.trim_end_matches(" (deleted)"));
    if stripped.exists() {
        Ok(stripped)
    } else {
        bail!("the advlens binary {} is gone: rebuild it and rerun reproduce (finished steps are kept)", exe.display())
    }
}

/// The epsilon adversarial training uses on `dataset` (the trainer's defaults; 8/255 for the
/// concept world).
fn training_epsilon(dataset: &str) -> f64 {
    match dataset {
        "mnist" => 0.3,
        "fashion-mnist" => 0.1,
        _ => 8.0 / 255.0,
    }
}

/// One invocation of this binary, skipped when its output `done` exists.
struct Step {
    done: PathBuf,
    args: Vec<String>,
}

/// Steps that must run in order (train -> eval -> export), by one worker.
struct Job {
    name: String,
    /// Rough relative cost, so the longest jobs start first.
    cost: f64,
    steps: Vec<Step>,
}

/// Wall-clock seconds of each step that ran (not the skipped ones), for the report.
#[derive(Default, Serialize, serde::Deserialize)]
pub struct Timings {
    pub steps: Vec<(String, String, f64)>,
    /// Each `reproduce` invocation that reached the report, in order.
    #[serde(default)]
    pub invocations: Vec<Invocation>,
}

/// One `reproduce` invocation: its wall clock, its `--jobs`, and how many steps it ran (the
/// others were done already).
#[derive(Clone, Serialize, serde::Deserialize)]
pub struct Invocation {
    pub seconds: f64,
    pub jobs: usize,
    pub steps_run: usize,
}

impl Timings {
    /// "24 min 55 s (--jobs 2, 60 steps), then 22 s (--jobs 2, 18 steps)".
    pub fn wall_clock(&self) -> String {
        let human = |s: f64| if s < 60.0 { format!("{s:.0} s") } else { format!("{} min {:.0} s", (s / 60.0).floor(), s % 60.0) };
        let parts: Vec<String> =
            self.invocations.iter().map(|i| format!("{} (--jobs {}, {} steps run)", human(i.seconds), i.jobs, i.steps_run)).collect();
        if parts.is_empty() {
            "unknown".into()
        } else {
            parts.join(", then ")
        }
    }
}

/// `OUT/timings.json`, rewritten after every step so that an interrupted reproduction keeps
/// the times of what it finished (and a resumed one adds to them).
struct TimingLog {
    path: PathBuf,
    timings: Mutex<Timings>,
}

impl TimingLog {
    fn open(out: &Path) -> Self {
        let path = out.join("timings.json");
        let timings = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        TimingLog { path, timings: Mutex::new(timings) }
    }

    /// Records the invocation that is ending, which ran the steps after the first `before`.
    fn finish(self, seconds: f64, jobs: usize, before: usize) -> Result<Timings> {
        let mut t = self.timings.into_inner().expect("lock");
        t.invocations.push(Invocation { seconds, jobs, steps_run: t.steps.len() - before });
        std::fs::write(&self.path, serde_json::to_string_pretty(&t)? + "\n").with_context(|| format!("writing {}", self.path.display()))?;
        Ok(t)
    }

    fn record(&self, job: &str, verb: &str, seconds: f64) -> Result<()> {
        let mut t = self.timings.lock().expect("lock");
        t.steps.push((job.to_string(), verb.to_string(), seconds));
        std::fs::write(&self.path, serde_json::to_string_pretty(&*t)? + "\n").with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Runs `jobs` on `workers` threads, longest first; each step's output goes to
/// `logs/<job>.log`. After a failure no new job starts; the running ones finish.
fn run_jobs(mut jobs: Vec<Job>, workers: usize, out: &Path, bar: &ProgressBar, timings: &TimingLog) -> Result<()> {
    jobs.sort_by(|a, b| b.cost.total_cmp(&a.cost));
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let exe = advlens_binary()?;
    let queue = Mutex::new(jobs.into_iter().collect::<std::collections::VecDeque<_>>());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                if failure.lock().expect("lock").is_some() {
                    return;
                }
                let Some(job) = queue.lock().expect("lock").pop_front() else { return };
                if let Err(e) = run_job(&job, &exe, &logs, bar, timings) {
                    failure.lock().expect("lock").get_or_insert(e);
                    return;
                }
            });
        }
    });
    match failure.into_inner().expect("lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn run_job(job: &Job, exe: &Path, logs: &Path, bar: &ProgressBar, timings: &TimingLog) -> Result<()> {
    for step in &job.steps {
        let verb = step.args[0].clone();
        if step.done.exists() {
            bar.suspend(|| eprintln!("[skip] {} exists", step.done.display()));
            bar.inc(1);
            continue;
        }
        let log_path = logs.join(format!("{}.log", job.name));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).with_context(|| format!("opening {}", log_path.display()))?;
        bar.suspend(|| eprintln!("[run] advlens {}", step.args.join(" ")));
        let start = std::time::Instant::now();
        let status = Command::new(exe)
            .args(&step.args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("running advlens")?;
        let seconds = start.elapsed().as_secs_f64();
        if !status.success() {
            bail!(
                "`advlens {}` failed ({status}); its output is in {}. Fix the cause and rerun reproduce: finished steps are kept",
                step.args.join(" "),
                log_path.display()
            );
        }
        bar.suspend(|| eprintln!("[done] {} {verb} in {seconds:.0} s", job.name));
        bar.inc(1);
        timings.record(&job.name, &verb, seconds)?;
    }
    Ok(())
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

pub use crate::study::results::ModelResult;

/// One world to reproduce on: a dataset, or the generated concept world.
struct World {
    name: String,
    dataset: String,
    data: PathBuf,
    archs: Vec<(&'static str, usize)>,
    epochs: usize,
    limit: Option<usize>,
    /// Images per epoch x pixels: the scale of a training job's cost.
    scale: f64,
    /// The replicate's seed: weights, batch order, augmentation, attack starts and targets.
    seed: u64,
}

impl World {
    fn model(&self, arch: &str, mode: &str) -> String {
        format!("{}-{arch}-{mode}", self.name)
    }
}

/// The controls of claim 3 (`--controls`): the consistent loss with the feature-distance term
/// off (lambda 0: adversarial cross-entropy alone), weaker and stronger (lambda 1 is the
/// `consistent` mode itself), and with targeted adversarial images (iterative least-likely
/// class) instead of untargeted PGD. The paper's unnormalised squared norm is lambda times the
/// feature layer's size here (the loss takes the mean).
pub const CONTROL_MODES: [&str; 4] = ["consistent-lambda0", "consistent-lambda0.1", "consistent-lambda10", "consistent-targeted"];

/// The `train` arguments of a mode: `--mode M`; for `consistent-lambda<X>` the consistent loss
/// with `--lambda X`; for `consistent-targeted` with `--attack ll`.
fn mode_args(mode: &str) -> Vec<String> {
    match (mode.strip_prefix("consistent-lambda"), mode) {
        (Some(lambda), _) => vec![s("--mode"), s("consistent"), s("--lambda"), s(lambda)],
        (None, "consistent-targeted") => vec![s("--mode"), s("consistent"), s("--attack"), s("ll")],
        (None, _) => vec![s("--mode"), s(mode)],
    }
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
    let common = |v: &mut Vec<String>| v.extend([s("--threads"), s(threads), s("--quiet")]);
    let data_s = w.data.display().to_string();
    let mut jobs = Vec::new();
    for mode in &p.modes {
        for (arch, width) in &w.archs {
            let name = w.model(arch, mode);
            let run = out.join("runs").join(&name);
            let bundle = out.join("models").join(&name);
            let mut steps = Vec::new();
            let mut args = vec![s("train"), s("--dataset"), s(&w.dataset), s("--data"), data_s.clone(), s("--arch"), s(arch), s("--width"), s(width)];
            args.extend(mode_args(mode));
            args.extend([s("--attack-steps"), s(p.attack_steps), s("--epochs"), s(w.epochs), s("--name"), name.clone()]);
            args.extend([s("--out"), run.display().to_string(), s("--seed"), s(w.seed)]);
            // Few attack steps must still reach the edge of the ball: step = 2.5 eps / steps;
            // epsilon grows over the first quarter of the run so short runs do not collapse.
            let eps = training_epsilon(&w.dataset);
            args.extend([s("--epsilon"), s(eps), s("--step-size"), s(2.5 * eps / p.attack_steps.max(1) as f64)]);
            args.extend([s("--epsilon-warmup"), s(w.epochs as f64 / 4.0)]);
            if let Some(l) = w.limit {
                args.extend([s("--limit"), s(l)]);
            }
            common(&mut args);
            let epochs_done = std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
            if run.join("last.safetensors").exists() && epochs_done < w.epochs {
                // Interrupted earlier: continue it.
                let mut resume = vec![s("train"), s("--resume"), s("--data"), data_s.clone(), s("--out"), run.display().to_string()];
                common(&mut resume);
                steps.push(Step { done: run.join("no-such-marker"), args: resume });
            } else if epochs_done < w.epochs {
                steps.push(Step { done: run.join("metrics.jsonl"), args });
            }
            let mut args = vec![s("eval"), s("--run"), run.display().to_string(), s("--data"), data_s.clone(), s("--attacks"), s("fgsm,pgd20")];
            args.extend([s("--limit"), s(p.attack_images), s("--seed"), s(w.seed)]);
            if w.dataset == "folder" {
                args.extend([s("--epsilon"), s(8.0 / 255.0)]);
            }
            common(&mut args);
            steps.push(Step { done: run.join("eval.json"), args });
            let mut args = vec![s("export"), s("--run"), run.display().to_string(), s("--data"), data_s.clone(), s("--out"), bundle.display().to_string()];
            common(&mut args);
            steps.push(Step { done: bundle.join("model.json"), args });
            jobs.push(Job { name, cost: cost(arch, mode) * w.scale * w.epochs as f64, steps });
        }
    }
    jobs
}

/// The ensemble attack of each mode: every architecture but the last, which is held out for
/// transfer.
fn attack_jobs(p: &Preset, w: &World, out: &Path, threads: usize) -> Vec<Job> {
    p.modes
        .iter()
        .map(|mode| {
            let bundle = |arch: &str| out.join("models").join(w.model(arch, mode)).display().to_string();
            let (held_out, attacked) = w.archs.split_last().expect("archs");
            let adv = out.join("adversarial").join(format!("{}-{mode}", w.name));
            let attacked: Vec<String> = attacked.iter().map(|(a, _)| bundle(a)).collect();
            let mut args = vec![s("attack"), s("--models"), attacked.join(","), s("--held-out"), bundle(held_out.0)];
            args.extend([s("--data"), w.data.display().to_string(), s("--limit"), s(p.attack_images), s("--steps"), s(p.ensemble_steps)]);
            args.extend([s("--out"), adv.display().to_string(), s("--seed"), s(w.seed)]);
            if w.dataset == "folder" {
                args.extend([s("--epsilon"), s(8.0 / 255.0)]);
            }
            args.extend([s("--threads"), s(threads), s("--quiet")]);
            Job { name: format!("{}-attack-{mode}", w.name), cost: w.scale, steps: vec![Step { done: adv.join("meta.json"), args }] }
        })
        .collect()
}

fn analysis_jobs(p: &Preset, w: &World, out: &Path, threads: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    for mode in &p.modes {
        for (arch, _) in &w.archs {
            let name = w.model(arch, mode);
            let bundle = out.join("models").join(&name);
            let adv = out.join("adversarial").join(format!("{}-{mode}", w.name));
            let dir = out.join("analysis").join(&name);
            let mut args = vec![s("analyze"), s("--model"), bundle.display().to_string(), s("--adv"), adv.display().to_string(), s("--data"), w.data.display().to_string()];
            // Equal pools: the real top-K among the same test images whose adversarial versions
            // the attack made (a larger real pool alone would favour real top images).
            args.extend([s("--limit"), s(p.attack_images), s("--atlas"), s("--out"), dir.display().to_string(), s("--threads"), s(threads)]);
            jobs.push(Job { name: format!("{name}-analysis"), cost: w.scale, steps: vec![Step { done: dir.join("analysis.json"), args }] });
        }
    }
    jobs
}

/// What was measured on every model of `w`, from the files the jobs wrote.
fn collect(p: &Preset, w: &World, out: &Path) -> Result<Vec<ModelResult>> {
    let mut results = Vec::new();
    for mode in &p.modes {
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

/// How many times to run the pipeline, and from which seed.
#[derive(Clone, Copy, Debug)]
pub struct Replication {
    pub seed: u64,
    pub replicates: usize,
    /// Also train [`CONTROL_MODES`] (claim 3's controls).
    pub controls: bool,
}

impl Replication {
    /// The seeds of the replicates, and where each writes: `out` itself for one replicate
    /// (the layout of earlier reproductions), else `out/seed-<s>/`.
    fn runs(&self, out: &Path) -> Vec<(u64, PathBuf)> {
        (0..self.replicates as u64)
            .map(|r| {
                let seed = self.seed + r;
                (seed, if self.replicates == 1 { out.to_path_buf() } else { out.join(format!("seed-{seed}")) })
            })
            .collect()
    }
}

/// Runs the whole pipeline once per replicate and writes `report.md`, `results.json` and the
/// figures into `out`. `workers` independent steps run at once (each with `threads` libtorch
/// threads).
pub fn reproduce(preset_name: &str, dataset: &str, data: &Path, out: &Path, threads: usize, workers: usize, replication: Replication) -> Result<PathBuf> {
    let p = preset_with(preset_name, replication.controls)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let start = std::time::Instant::now();
    let timings = TimingLog::open(out);
    let steps_before = timings.timings.lock().expect("lock").steps.len();
    // The concept world is data, not a replicate's choice: generated once, shared.
    let concepts = out.join("data").join("concepts");
    let generate = Job {
        name: "concepts-data".into(),
        cost: 0.0,
        steps: vec![Step {
            done: concepts.join("vocab.json"),
            args: vec![s("data"), s("concepts"), s("--train"), s(p.concept_train), s("--test"), s(p.concept_test), s("--seed"), s(0), s("--out"), concepts.display().to_string(), s("--quiet")],
        }],
    };
    let runs = replication.runs(out);
    let worlds: Vec<(PathBuf, [World; 2])> = runs.iter().map(|(seed, dir)| (dir.clone(), worlds(&p, dataset, data, &concepts, *seed))).collect();
    // Each phase across all replicates, so that independent steps of different seeds overlap.
    let (mut train, mut attack, mut analyse) = (Vec::new(), Vec::new(), Vec::new());
    for (dir, ws) in &worlds {
        let [t, a, n] = replicate_jobs(&p, ws, dir, threads);
        train.extend(t);
        attack.extend(a);
        analyse.extend(n);
    }
    let phases: Vec<(&str, Vec<Job>)> =
        vec![("concept world", vec![generate]), ("train, eval, export", train), ("ensemble attacks", attack), ("analyses", analyse)];
    let total: usize = phases.iter().flat_map(|(_, jobs)| jobs.iter().map(|j| j.steps.len())).sum();
    let bar = crate::train::progress_bar(total as u64, false, "reproduce");
    for (phase, jobs) in phases {
        bar.set_message(phase);
        run_jobs(jobs, workers, out, &bar, &timings)?;
    }
    bar.finish_with_message("done");
    let mut results = Vec::new();
    for (dir, ws) in &worlds {
        for w in ws {
            results.extend(collect(&p, w, dir)?);
        }
    }
    let all = timings.finish(start.elapsed().as_secs_f64(), workers, steps_before)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)? + "\n")?;
    figures(&results, dataset, out)?;
    let report = report(&results, preset_name, dataset, &all, replication);
    let path = out.join("report.md");
    std::fs::write(&path, report)?;
    Ok(path)
}

/// The command line of every step `preset` runs for one replicate (seed) into `out`, in order:
/// what the binary's test parses with the real CLI, so that a renamed flag fails a test instead
/// of a reproduction hours in.
pub fn step_commands(preset_name: &str, dataset: &str, data: &Path, out: &Path, seed: u64, controls: bool) -> Result<Vec<Vec<String>>> {
    let p = preset_with(preset_name, controls)?;
    let ws = worlds(&p, dataset, data, &out.join("data").join("concepts"), seed);
    Ok(replicate_jobs(&p, &ws, out, 1).into_iter().flatten().flat_map(|j| j.steps.into_iter().map(|s| s.args)).collect())
}

/// The preset, with claim 3's controls when asked for.
fn preset_with(name: &str, controls: bool) -> Result<Preset> {
    let mut p = preset(name)?;
    if controls {
        p.modes.extend(CONTROL_MODES);
    }
    Ok(p)
}

/// One replicate's jobs, by phase: train/eval/export, ensemble attacks, analyses.
fn replicate_jobs(p: &Preset, ws: &[World], dir: &Path, threads: usize) -> [Vec<Job>; 3] {
    [
        ws.iter().flat_map(|w| training_jobs(p, w, dir, threads)).collect(),
        ws.iter().flat_map(|w| attack_jobs(p, w, dir, threads)).collect(),
        ws.iter().flat_map(|w| analysis_jobs(p, w, dir, threads)).collect(),
    ]
}

/// The dataset and the concept world, as one replicate trains them.
fn worlds(p: &Preset, dataset: &str, data: &Path, concepts: &Path, seed: u64) -> [World; 2] {
    let side = if dataset == "cifar10" { 32.0 * 32.0 * 3.0 } else { 28.0 * 28.0 };
    let train_images = p.limit.unwrap_or(if dataset == "cifar10" { 50_000 } else { 60_000 }) as f64;
    let concept_archs: Vec<(&'static str, usize)> = p.archs.iter().map(|&(a, w)| (a, w * 2)).collect();
    [
        World { name: dataset.into(), dataset: dataset.into(), data: data.into(), archs: p.archs.clone(), epochs: p.epochs, limit: p.limit, scale: train_images * side, seed },
        // Generated by the pipeline, so the reproduction needs no download; wider models for colour images.
        World {
            name: "concepts".into(),
            dataset: "folder".into(),
            data: concepts.to_path_buf(),
            archs: concept_archs,
            epochs: p.concept_epochs,
            limit: None,
            scale: p.concept_train as f64 * 32.0 * 32.0 * 3.0 * 4.0,
            seed,
        },
    ]
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The report: per-model table, then each claim with the numbers and a verdict by a stated rule.
pub fn report(results: &[ModelResult], preset: &str, dataset: &str, timings: &Timings, replication: Replication) -> String {
    let mut r = format!(
        "# Reproduction of Dong et al. on our data\n\nGenerated by `advlens reproduce --preset {preset} --dataset {dataset} --seed {} --replicates {}`; wall clock: {}. \
         Numbers, not tuned toward the paper: the analysis is the one docs/analysis.md specifies.\n\n",
        replication.seed,
        replication.replicates,
        timings.wall_clock()
    );
    r += "## Models\n\n| world | arch | mode | seed | clean acc. | robust acc. | ensemble | analysed layer | adv. images (successful) |\n|---|---|---|---|---|---|---|---|---|\n";
    for m in results {
        let robust: Vec<String> = m.robust_accuracy.iter().map(|(k, v)| format!("{k}: {:.1}%", 100.0 * v)).collect();
        r += &format!(
            "| {} | {} | {} | {} | {:.1}% | {} | {} | `{}` | {} ({}) |\n",
            m.world,
            m.arch,
            m.mode,
            m.seed,
            100.0 * m.clean_accuracy,
            robust.join(", "),
            if m.attacked { "attacked" } else { "held out" },
            m.analysis.layer,
            m.analysis.adversarial_images,
            m.analysis.successful
        );
    }
    r += "\n## Measurements per model\n\n| world | arch | mode | silent neurons | consis real | consis adv (source) | consis adv (target) | CS1 | CS2 | r > 1 | trace AUC |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    let opt = |v: Option<f64>, pct: bool| v.map_or("-".into(), |x| if pct { format!("{:.1}%", 100.0 * x) } else { format!("{x:.3}") });
    for m in results {
        let a = &m.analysis;
        r += &format!(
            "| {} | {} | {} | {} of {} | {:.3} | {:.3} | {} | {:.3} | {} | {} | {} |\n",
            m.world, m.arch, m.mode, a.silent_neurons, a.neurons.len(), a.mean_consis_real, a.mean_consis_adv_source, opt(a.mean_consis_adv_target, false), a.mean_cs1, opt(a.mean_cs2, false),
            opt(a.fraction_r_above_1, true), opt(a.trace_auc, false)
        );
    }
    r += "\nThe same with the adversarial top images taken among the **successful** adversarial images only \
          (not used by the verdicts below, which follow the definition; on robust models most attacks fail, and \
          failed images look like their source class to the model too):\n\n\
          | world | arch | mode | successful images | neurons counted | consis adv (source) | CS1 | CS2 |\n|---|---|---|---|---|---|---|---|\n";
    for m in results {
        let a = &m.analysis;
        r += &match &a.successful_only {
            Some(o) => format!(
                "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {} |\n",
                m.world, m.arch, m.mode, o.images, o.neurons, o.mean_consis_adv_source, o.mean_cs1, opt(o.mean_cs2, false)
            ),
            None => format!("| {} | {} | {} | {} | - | - | - | - |\n", m.world, m.arch, m.mode, a.successful),
        };
    }
    // Claims 1-4 on the real dataset; the concept world has its own section below.
    let seeds: std::collections::BTreeSet<u64> = results.iter().map(|m| m.seed).collect();
    let top_k = results.first().map_or(10, |m| m.analysis.top_k);
    let consis_chance = crate::study::claims::consis_chance(10, top_k);
    let consis_real = mean(results.iter().filter(|m| m.world == dataset && m.mode == "standard").map(|m| m.analysis.mean_consis_real));
    r += &format!(
        "\n## The paper's claims (on {dataset}; {} replicate(s), seeds {:?}; architectures pooled)\n\n**The rule, stated before the numbers.** {}\n\
         Chance levels: consis of a neuron blind to class is {consis_chance:.3} (10 classes, top {top_k}); CS of such a neuron is about 1/sqrt(10 consis) = {:.3} at the standard models' mean real consis {consis_real:.3}.\n\n",
        seeds.len(),
        seeds,
        crate::study::claims::rules(),
        1.0 / (10.0 * consis_real).sqrt(),
    );
    r += &crate::study::claims::section(&crate::study::claims::decide(results, dataset));
    if replication.replicates < 3 {
        r += "\nWith fewer than 3 replicates the intervals reflect neuron-to-neuron spread only, not training noise: read verdicts as provisional (`--replicates 3`).\n";
    }
    let detectors = |mode: &str, adv: bool| -> BTreeMap<String, usize> {
        let mut total = BTreeMap::new();
        for m in results.iter().filter(|m| m.world == "concepts" && m.mode == mode) {
            for (k, v) in if adv { &m.analysis.detectors_adv } else { &m.analysis.detectors_real } {
                *total.entry(k.clone()).or_insert(0) += v;
            }
        }
        total
    };
    r += "\n## Concept detectors on the concept world (IoU > 0.04, summed over the three architectures)\n\n| mode | real images | adversarial images |\n|---|---|---|\n";
    for mode in ["standard", "pgd", "consistent"] {
        r += &format!("| {mode} | {:?} | {:?} |\n", detectors(mode, false), detectors(mode, true));
    }
    r += "\n## Where the time went\n\nSeconds per kind of step, summed over the steps (they ran in parallel; skipped steps are not counted):\n\n| step | runs | seconds |\n|---|---|---|\n";
    let mut per_verb: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for (_, verb, secs) in &timings.steps {
        let e = per_verb.entry(verb.as_str()).or_default();
        e.0 += 1;
        e.1 += secs;
    }
    for (verb, (n, secs)) in per_verb {
        r += &format!("| {verb} | {n} | {secs:.0} |\n");
    }
    r += "\nFigures (the dataset's models, firing neurons only): `consis.png` (consis on real vs adversarial top images, per mode), `cs.png` (CS1 and CS2 against consis, like the paper's Figure 8), `r.png` (the r distribution per mode, like Figure 9), `detectors.png` (concept detectors per category, real vs adversarial, per mode).\n";
    r
}

fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let mut h = vec![0usize; bins];
    for &v in values {
        let b = (((v - lo) / (hi - lo)) * bins as f64).floor().clamp(0.0, (bins - 1) as f64) as usize;
        h[b] += 1;
    }
    let n = values.len().max(1) as f64;
    h.iter().enumerate().map(|(i, &c)| (lo + (i as f64 + 0.5) * (hi - lo) / bins as f64, c as f64 / n)).collect()
}

/// The figures of the dataset's models (the concept world only in `detectors.png`), from the
/// neurons the means count (silent ones left out).
fn figures(results: &[ModelResult], dataset: &str, out: &Path) -> Result<()> {
    let f = crate::plot::font_name();
    let firing = |m: &ModelResult| -> Vec<advlens_shared::analysis::atlas::NeuronStats> { m.analysis.neurons.iter().filter(|n| !n.silent).cloned().collect() };
    let modes = ["standard", "pgd", "consistent"];
    let colors = [BLUE, RED, GREEN];
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    // consis distributions.
    {
        let path = out.join("consis.png");
        let root = BitMapBackend::new(&path, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (title, adv)) in panels.iter().zip([("consis, real top images", false), ("consis, adversarial top images (source)", true)]) {
            let mut chart = ChartBuilder::on(panel).caption(title, (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(|e| err(&e))?;
            chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
            for (mode, color) in modes.iter().zip(colors) {
                let v: Vec<f64> = results.iter().filter(|m| m.mode == *mode && m.world == dataset).flat_map(|m| firing(m).into_iter().map(|n| if adv { n.consis_adv_source } else { n.consis_real })).collect();
                chart.draw_series(LineSeries::new(histogram(&v, 0.0, 1.0, 20), color.stroke_width(2))).map_err(|e| err(&e))?
                    .label(*mode).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
            }
            chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    // CS1 and CS2 against consis (real), per mode.
    {
        let path = out.join("cs.png");
        let root = BitMapBackend::new(&path, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (title, second)) in panels.iter().zip([("CS1 vs consis (real)", false), ("CS2 vs consis (real)", true)]) {
            let mut chart = ChartBuilder::on(panel).caption(title, (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(|e| err(&e))?;
            chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
            for (mode, color) in modes.iter().zip(colors) {
                let pts: Vec<(f64, f64)> = results
                    .iter()
                    .filter(|m| m.mode == *mode && m.world == dataset)
                    .flat_map(|m| firing(m).into_iter().filter_map(|n| Some((n.consis_real, if second { n.cs2? } else { n.cs1 }))))
                    .collect();
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 2, color.filled()))).map_err(|e| err(&e))?
                    .label(*mode).legend(move |(x, y)| Circle::new((x + 7, y), 3, color.filled()));
            }
            chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    // r distribution (log2 r), per mode.
    {
        let path = out.join("r.png");
        let root = BitMapBackend::new(&path, (600, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root).caption("log2 r of successful adversarial images", (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
            .build_cartesian_2d(-3.0..3.0, 0.0..0.5).map_err(|e| err(&e))?;
        chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
        for (mode, color) in modes.iter().zip(colors) {
            let v: Vec<f64> = results.iter().filter(|m| m.mode == *mode && m.world == dataset).flat_map(|m| m.analysis.r.iter().map(|r| r.log2())).collect();
            chart.draw_series(LineSeries::new(histogram(&v, -3.0, 3.0, 24), color.stroke_width(2))).map_err(|e| err(&e))?
                .label(*mode).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    // Concept detectors per category, real vs adversarial, per mode (concept world).
    {
        let path = out.join("detectors.png");
        let root = BitMapBackend::new(&path, (960, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let categories = ["object", "part", "colour", "texture"];
        let count = |mode: &str, adv: bool, cat: &str| -> f64 {
            results
                .iter()
                .filter(|m| m.world == "concepts" && m.mode == mode)
                .map(|m| *if adv { &m.analysis.detectors_adv } else { &m.analysis.detectors_real }.get(cat).unwrap_or(&0) as f64)
                .sum()
        };
        let top = modes.iter().flat_map(|m| categories.iter().flat_map(move |c| [(m, c, false), (m, c, true)])).map(|(m, c, a)| count(m, a, c)).fold(1.0, f64::max);
        for (panel, mode) in root.split_evenly((1, 3)).iter().zip(modes) {
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{mode}: detectors (blue real, red adv.)"), (f, 14))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(32)
                .build_cartesian_2d(0.0..4.0, 0.0..top * 1.1)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_labels(5)
                .x_label_formatter(&|x: &f64| categories.get(x.floor() as usize).map_or(String::new(), |c| c.to_string()))
                .label_style((f, 11))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, cat) in categories.iter().enumerate() {
                let x = i as f64;
                chart
                    .draw_series([
                        Rectangle::new([(x + 0.15, 0.0), (x + 0.5, count(mode, false, cat))], BLUE.filled()),
                        Rectangle::new([(x + 0.5, 0.0), (x + 0.85, count(mode, true, cat))], RED.filled()),
                    ])
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicates_have_their_own_seeds_and_folders() {
        let out = Path::new("/r");
        assert_eq!(Replication { seed: 0, replicates: 1, controls: false }.runs(out), vec![(0, PathBuf::from("/r"))], "one replicate keeps the old layout");
        assert_eq!(Replication { seed: 5, replicates: 2, controls: false }.runs(out), vec![(5, PathBuf::from("/r/seed-5")), (6, PathBuf::from("/r/seed-6"))]);
        // Every step that draws random numbers carries the replicate's seed (export draws none).
        let p = preset("smoke").unwrap();
        let [w, _] = worlds(&p, "mnist", Path::new("/d"), Path::new("/r/data/concepts"), 6);
        for job in training_jobs(&p, &w, Path::new("/r/seed-6"), 1).iter().chain(&attack_jobs(&p, &w, Path::new("/r/seed-6"), 1)) {
            for step in job.steps.iter().filter(|s| s.args[0] != "export") {
                let at = step.args.iter().position(|a| a == "--seed").unwrap_or_else(|| panic!("no --seed in {:?}", step.args));
                assert_eq!(step.args[at + 1], "6", "{:?}", step.args);
            }
        }
    }

    #[test]
    fn control_modes_train_the_consistent_loss_with_their_lambda() {
        assert_eq!(mode_args("pgd"), ["--mode", "pgd"]);
        assert_eq!(mode_args("consistent-lambda0.1"), ["--mode", "consistent", "--lambda", "0.1"]);
        assert_eq!(mode_args("consistent-targeted"), ["--mode", "consistent", "--attack", "ll"]);
        let commands = step_commands("smoke", "mnist", Path::new("/d"), Path::new("/o"), 0, true).unwrap();
        let trains: Vec<&Vec<String>> = commands.iter().filter(|c| c[0] == "train").collect();
        assert_eq!(trains.len(), 2 * 3 * (3 + CONTROL_MODES.len()), "two worlds x three archs x seven modes");
        assert!(trains.iter().any(|c| c.windows(2).any(|w| w == ["--lambda", "0"]) && c.iter().any(|a| a == "mnist-resnet-consistent-lambda0")));
    }
}
