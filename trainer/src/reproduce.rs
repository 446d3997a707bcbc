//! `advlens reproduce`: the paper's pipeline end to end — train three architectures in
//! standard, pgd and consistent modes, ensemble-attack each mode's models (one architecture held
//! out for transfer), analyse every model, repeat on the concept world for concept IoU, and write
//! a report that says, claim by claim, whether the paper's findings held on our data.
//!
//! Each step runs this same binary's subcommands and is skipped when its output exists, so an
//! interrupted reproduction continues where it stopped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::study::figures::figures;
use crate::study::plan::{collect, concepts_step, replicate_jobs, worlds, World};
pub use crate::study::plan::Replication;
pub use crate::study::preset::{preset, preset_with, Preset, CONTROL_MODES};
pub use crate::study::report::report;
pub use crate::study::results::ModelResult;
use crate::study::schedule::{run_jobs, Job, Step, TimingLog};
use crate::study::steps::StepConfig;
pub use crate::study::schedule::{Invocation, Timings};

/// Runs the whole pipeline once per replicate and writes `report.md`, `results.json` and the
/// figures into `out`. `workers` independent steps run at once (each with `threads` libtorch
/// threads).
pub fn reproduce(preset_name: &str, dataset: &str, data: &Path, out: &Path, threads: usize, workers: usize, replication: Replication) -> Result<PathBuf> {
    let p = preset_with(preset_name, replication.controls)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let start = std::time::Instant::now();
    let timings = TimingLog::open(out);
    let steps_before = timings.steps_recorded();
    // The concept world is data, not a replicate's choice: generated once, shared.
    let concepts = out.join("data").join("concepts");
    let generate = Job {
        name: "concepts-data".into(),
        cost: 0.0,
        steps: vec![Step {
            done: concepts.join("vocab.json"),
            config: concepts_step(&p, &concepts),
        }],
    };
    let runs = replication.runs(out);
    let concept_world = replication.concepts.then_some(concepts.as_path());
    let worlds: Vec<(PathBuf, Vec<World>)> = runs.iter().map(|(seed, dir)| (dir.clone(), worlds(&p, dataset, data, concept_world, *seed))).collect();
    // Each phase across all replicates, so that independent steps of different seeds overlap.
    let (mut train, mut attack, mut analyse) = (Vec::new(), Vec::new(), Vec::new());
    for (dir, ws) in &worlds {
        let [t, a, n] = replicate_jobs(&p, ws, dir, threads);
        train.extend(t);
        attack.extend(a);
        analyse.extend(n);
    }
    let generate = if replication.concepts { vec![generate] } else { Vec::new() };
    let phases: Vec<(&str, Vec<Job>)> = vec![("concept world", generate), ("train, eval, export", train), ("ensemble attacks", attack), ("analyses", analyse)];
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
            results.extend(collect(w, dir)?);
        }
    }
    let all = timings.finish(start.elapsed().as_secs_f64(), workers, steps_before)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)? + "\n")?;
    write_report(&results, preset_name, dataset, &all, replication, out)
}

/// `report.md` and the figures of `results` into `out`.
fn write_report(results: &[ModelResult], preset_name: &str, dataset: &str, timings: &Timings, replication: Replication, out: &Path) -> Result<PathBuf> {
    figures(results, dataset, out)?;
    let path = out.join("report.md");
    std::fs::write(&path, report(results, preset_name, dataset, timings, replication)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `advlens report`: rewrites the report and figures of a finished reproduction from its
/// `results.json` (and the `timings.json` beside it), with the current rules and controls,
/// without rerunning anything. The seeds and controls are read from the results.
pub fn rewrite_report(results_json: &Path, preset_name: &str, dataset: &str) -> Result<PathBuf> {
    let bytes = std::fs::read(results_json).with_context(|| format!("reading {} (the results.json a reproduction wrote)", results_json.display()))?;
    let results: Vec<ModelResult> = serde_json::from_slice(&bytes).with_context(|| format!("{} is not a reproduction's results.json", results_json.display()))?;
    anyhow::ensure!(results.iter().any(|m| m.world == dataset), "{} has no models of {dataset} (it holds {:?})", results_json.display(), {
        let mut w: Vec<&str> = results.iter().map(|m| m.world.as_str()).collect();
        w.sort_unstable();
        w.dedup();
        w
    });
    let out = results_json.parent().unwrap_or(Path::new("."));
    let timings: Timings = match std::fs::read(out.join("timings.json")) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", out.join("timings.json").display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Timings::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.join("timings.json").display())),
    };
    let mut seeds: Vec<u64> = results.iter().map(|m| m.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let replication = Replication {
        seed: seeds[0],
        replicates: seeds.len(),
        controls: results.iter().any(|m| CONTROL_MODES.contains(&m.mode.as_str())),
        concepts: results.iter().any(|m| m.world == "concepts"),
    };
    write_report(&results, preset_name, dataset, &timings, replication, out)
}

/// Every step `preset` runs for one replicate (seed) into `out`, in order (the concept world's
/// generation first): what the binary's test parses with the real CLI and compares with, so
/// that a renamed flag fails a test instead of a reproduction hours in.
pub fn step_configs(preset_name: &str, dataset: &str, data: &Path, out: &Path, seed: u64, controls: bool) -> Result<Vec<StepConfig>> {
    let p = preset_with(preset_name, controls)?;
    let concepts = out.join("data").join("concepts");
    let generate = concepts_step(&p, &concepts);
    let ws = worlds(&p, dataset, data, Some(&concepts), seed);
    let steps = replicate_jobs(&p, &ws, out, 1).into_iter().flatten().flat_map(|j| j.steps.into_iter().map(|s| s.config));
    Ok(std::iter::once(generate).chain(steps).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed MNIST reproduction (3 seeds) rewritten from its results: the seeds are read
    /// back, the report decides the claims with today's controls, and wrong inputs say why.
    #[test]
    fn a_report_is_rewritten_from_results_alone() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reproduction/mnist-3-seeds/results.json");
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results.json");
        std::fs::copy(&committed, &results).unwrap();
        let report = std::fs::read_to_string(rewrite_report(&results, "quick", "mnist").unwrap()).unwrap();
        assert!(report.contains("--seed 0 --replicates 3`"), "seeds read from the results");
        assert!(report.contains("3 replicate(s), seeds {0, 1, 2}"));
        assert!(report.contains("control, not deciding: CS1 consistent − CS1 standard, successful attacks only (over models)"));
        assert!(report.contains("wall clock: unknown"), "no timings.json beside the copy");
        assert!(dir.path().join("cs.png").exists());

        let err = rewrite_report(&results, "quick", "cifar10").unwrap_err().to_string();
        assert!(err.contains("has no models of cifar10") && err.contains("mnist"), "{err}");
        std::fs::write(&results, "{}").unwrap();
        let err = format!("{:#}", rewrite_report(&results, "quick", "mnist").unwrap_err());
        assert!(err.contains("is not a reproduction's results.json"), "{err}");
        let err = format!("{:#}", rewrite_report(&dir.path().join("missing.json"), "quick", "mnist").unwrap_err());
        assert!(err.contains("the results.json a reproduction wrote"), "{err}");
    }
}
