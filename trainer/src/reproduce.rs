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

/// Every step `preset` runs for one replicate (seed) into `out`, in order (the concept world's
/// generation first): what the binary's test parses with the real CLI and compares with, so
/// that a renamed flag fails a test instead of a reproduction hours in.
pub fn step_configs(preset_name: &str, dataset: &str, data: &Path, out: &Path, seed: u64, controls: bool) -> Result<Vec<StepConfig>> {
    let p = preset_with(preset_name, controls)?;
    let concepts = out.join("data").join("concepts");
    let generate = concepts_step(&p, &concepts);
    let ws = worlds(&p, dataset, data, &concepts, seed);
    let steps = replicate_jobs(&p, &ws, out, 1).into_iter().flatten().flat_map(|j| j.steps.into_iter().map(|s| s.config));
    Ok(std::iter::once(generate).chain(steps).collect())
}
