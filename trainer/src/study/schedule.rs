//! Running a reproduction's steps: jobs of this binary's subcommands on a few worker threads,
//! longest first, each step skipped when its output exists, with the time of every step kept in
//! `timings.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use serde::Serialize;

use super::steps::StepConfig;

/// One invocation of this binary, skipped when its output `done` exists.
pub struct Step {
    pub done: PathBuf,
    pub config: StepConfig,
}

/// Steps that must run in order (train -> eval -> export), by one worker.
pub struct Job {
    pub name: String,
    /// Rough relative cost, so the longest jobs start first.
    pub cost: f64,
    pub steps: Vec<Step>,
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
pub struct TimingLog {
    path: PathBuf,
    timings: Mutex<Timings>,
}

impl TimingLog {
    pub fn open(out: &Path) -> Self {
        let path = out.join("timings.json");
        let timings = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        TimingLog { path, timings: Mutex::new(timings) }
    }

    /// Records the invocation that is ending, which ran the steps after the first `before`.
    pub fn finish(self, seconds: f64, jobs: usize, before: usize) -> Result<Timings> {
        let mut t = self.timings.into_inner().expect("lock");
        t.invocations.push(Invocation { seconds, jobs, steps_run: t.steps.len() - before });
        std::fs::write(&self.path, serde_json::to_string_pretty(&t)? + "\n").with_context(|| format!("writing {}", self.path.display()))?;
        Ok(t)
    }

    /// Steps recorded so far (by earlier invocations too).
    pub fn steps_recorded(&self) -> usize {
        self.timings.lock().expect("lock").steps.len()
    }

    fn record(&self, job: &str, verb: &str, seconds: f64) -> Result<()> {
        let mut t = self.timings.lock().expect("lock");
        t.steps.push((job.to_string(), verb.to_string(), seconds));
        std::fs::write(&self.path, serde_json::to_string_pretty(&*t)? + "\n").with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Runs `jobs` on `workers` threads, longest first; each step's output goes to
/// `logs/<job>.log`. After a failure no new job starts; the running ones finish.
pub fn run_jobs(mut jobs: Vec<Job>, workers: usize, out: &Path, bar: &ProgressBar, timings: &TimingLog) -> Result<()> {
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
        let verb = step.config.verb();
        let args = step.config.args();
        if step.done.exists() {
            bar.suspend(|| eprintln!("[skip] {} exists", step.done.display()));
            bar.inc(1);
            continue;
        }
        let log_path = logs.join(format!("{}.log", job.name));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).with_context(|| format!("opening {}", log_path.display()))?;
        bar.suspend(|| eprintln!("[run] advlens {}", args.join(" ")));
        let start = std::time::Instant::now();
        let status = Command::new(exe)
            .args(&args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("running advlens")?;
        let seconds = start.elapsed().as_secs_f64();
        if !status.success() {
            bail!(
                "`advlens {}` failed ({status}); its output is in {}. Fix the cause and rerun reproduce: finished steps are kept",
                args.join(" "),
                log_path.display()
            );
        }
        bar.suspend(|| eprintln!("[done] {} {verb} in {seconds:.0} s", job.name));
        bar.inc(1);
        timings.record(&job.name, verb, seconds)?;
    }
    Ok(())
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

