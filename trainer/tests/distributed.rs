//! `advlens train --distributed`: two ranks on loopback (Gloo) against one process, faults,
//! and torchrun's restarts. Needs MNIST (ADVLENS_DATASETS) like the other data tests, and
//! torchrun from the torch wheel that provides libtorch.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use safetensors::SafeTensors;

fn mnist_dir() -> Option<PathBuf> {
    data_dir("mnist")
}

fn data_dir(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("ADVLENS_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    let dir = root.join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: no {name} at {} (set ADVLENS_DATASETS to the folder holding it)", dir.display());
        None
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `advlens train` with `args` as rank `rank` of `world` (the rendezvous on `port`).
fn rank(rank: usize, world: usize, port: u16, args: &[String], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_advlens"))
        .arg("train")
        .args(args)
        .args(["--distributed", "--quiet", "--device", "cpu"])
        .env_remove("ADVLENS_DATA")
        .envs(env.iter().copied())
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start advlens")
}

fn single(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advlens"))
        .arg("train")
        .args(args)
        .args(["--quiet", "--device", "cpu"])
        .env_remove("ADVLENS_DATA")
        .output()
        .expect("run advlens")
}

fn ok(out: &Output) -> &Output {
    assert!(out.status.success(), "advlens failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn two_ranks(args: &[String]) -> [Output; 2] {
    let port = free_port();
    let children = [rank(0, 2, port, args, &[]), rank(1, 2, port, args, &[])];
    children.map(|c| c.wait_with_output().unwrap())
}

/// The options of a short MNIST run writing to `out`.
fn run_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--data", data.to_str().unwrap(), "--dataset", "mnist", "--out", out.to_str().unwrap(), "--threads", "1"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The network tensors (`net/...`) of a checkpoint, by name.
fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| name.starts_with("net/"))
        .map(|(name, view)| (name, view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The largest per-tensor relative L2 difference `||a - b|| / ||a||` between two checkpoints.
///
/// L2, not the largest entry: Adam divides each gradient entry by its running RMS, so an entry
/// whose gradient is nearly zero turns the rounding of a differently ordered sum into a step
/// of up to the learning rate. Such entries are few; the tensor as a whole stays equal.
fn max_relative_difference(a: &Path, b: &Path) -> f64 {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.iter().map(|w| &w.0).collect::<Vec<_>>(), wb.iter().map(|w| &w.0).collect::<Vec<_>>());
    assert!(!wa.is_empty());
    wa.iter()
        .zip(&wb)
        .map(|((_, x), (_, y))| {
            let norm = x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt().max(1e-12);
            x.iter().zip(y).map(|(p, q)| f64::from(p - q).powi(2)).sum::<f64>().sqrt() / norm
        })
        .fold(0.0, f64::max)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Two ranks each take half of every 30-image batch and average their gradients: after an
/// epoch the weights equal one process's with batch 30. 181 training images make the last
/// batch a single image, so rank 1 has no rows in it and contributes a zero gradient.
fn ranks_equal_one_process(mode: &[&str], tolerance: f64) {
    let Some(data) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let common = ["--arch", "small-cnn", "--epochs", "1", "--limit", "201", "--val-fraction", "0.1", "--batch-size", "30", "--checkpoint-every", "0"];
    let extra: Vec<&str> = common.iter().chain(mode).copied().collect();
    ok(&single(&run_args(&data, &tmp.path().join("one"), &extra)));
    let outs = two_ranks(&run_args(&data, &tmp.path().join("two"), &extra));
    for out in &outs {
        ok(out);
    }
    assert!(!tmp.path().join("two/config.json").exists() || tmp.path().join("two/last.safetensors").exists());
    let diff = max_relative_difference(&tmp.path().join("one/last.safetensors"), &tmp.path().join("two/last.safetensors"));
    eprintln!("{mode:?}: 2 ranks vs 1 process, largest relative weight difference {diff:.2e}");
    assert!(diff <= tolerance, "{mode:?}: weights differ by {diff:.3e} (relative), more than {tolerance:.0e}");
    // Only rank 0 prints the summary.
    assert!(String::from_utf8_lossy(&outs[0].stdout).contains("epochs_done"));
    assert!(String::from_utf8_lossy(&outs[1].stdout).trim().is_empty());
}

#[test]
fn two_ranks_train_standard_like_one_process_with_the_same_batch() {
    ranks_equal_one_process(&["--mode", "standard"], 1e-5);
}

#[test]
fn two_ranks_train_consistent_like_one_process_with_the_same_batch() {
    ranks_equal_one_process(&["--mode", "consistent", "--attack-steps", "3"], 1e-5);
}

/// Waits for `child` at most `limit`; kills it and fails when it is still running.
fn wait_at_most(mut child: Child, limit: Duration, what: &str) -> (Output, Duration) {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what}: still running after {limit:?}; stderr: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `path` exists (the run has taken its first steps).
fn wait_for_file(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} did not appear within {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A long run (many short steps) that the fault tests interrupt.
fn long_run(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut opts = vec!["--epochs", "20", "--limit", "3000", "--batch-size", "16", "--checkpoint-every", "5"];
    opts.extend(extra);
    run_args(data, out, &opts)
}

#[test]
fn a_killed_rank_stops_the_others_at_once_with_a_clear_error() {
    let Some(data) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let args = long_run(&data, &tmp.path().join("run"), &[]);
    let port = free_port();
    let (zero, mut one) = (rank(0, 2, port, &args, &[]), rank(1, 2, port, &args, &[]));
    wait_for_file(&tmp.path().join("run/last.safetensors"), Duration::from_secs(120));
    one.kill().unwrap();
    let _ = one.wait();
    let (out, took) = wait_at_most(zero, Duration::from_secs(60), "rank 0 after rank 1 was killed");
    let text = stderr(&out);
    eprintln!("rank 0 stopped {took:?} after rank 1 was killed: {text}");
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("crashed, was killed or lost its connection"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn a_hung_rank_times_the_others_out_with_a_clear_error() {
    let Some(data) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let args = long_run(&data, &tmp.path().join("run"), &["--dist-timeout", "8"]);
    let port = free_port();
    let (zero, one) = (rank(0, 2, port, &args, &[]), rank(1, 2, port, &args, &[]));
    wait_for_file(&tmp.path().join("run/last.safetensors"), Duration::from_secs(120));
    let pid = one.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let (out, took) = wait_at_most(zero, Duration::from_secs(60), "rank 0 after rank 1 stopped answering");
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    let text = stderr(&out);
    eprintln!("rank 0 stopped {took:?} after rank 1 hung: {text}");
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--dist-timeout"), "{text}");
    assert!(took >= Duration::from_secs(7), "gave up after {took:?}, before the 8 s timeout");
}

#[test]
fn ranks_with_different_command_lines_refuse_to_start() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let base = run_args(&mnist, &out, &["--epochs", "1", "--limit", "64"]);
    let mut other = base.clone();
    other.extend(["--lr".to_string(), "0.01".to_string()]);
    let port = free_port();
    let outs = [rank(0, 2, port, &base, &[]), rank(1, 2, port, &other, &[])].map(|c| wait_at_most(c, Duration::from_secs(60), "a mismatched rank").0);
    assert_eq!(outs.each_ref().map(|o| o.status.code()), [Some(2), Some(2)], "{} | {}", stderr(&outs[0]), stderr(&outs[1]));
    assert!(stderr(&outs[1]).contains("rank 1's command line differs from rank 0's"), "{}", stderr(&outs[1]));
    assert!(stderr(&outs[0]).contains("rank 1 failed"), "{}", stderr(&outs[0]));
    assert!(!out.join("config.json").exists(), "nothing is written when the ranks disagree");

}

/// Ranks use rank 0's --data path; on several machines that path may hold other data. Two ranks
/// in one process (two threads, one process group) holding MNIST and Fashion-MNIST both fail.
#[test]
fn ranks_holding_different_data_at_the_same_path_refuse_to_start() {
    use advlens_trainer::data::{Dataset, DatasetKind, Split};
    use advlens_trainer::dist::{Launch, Team};
    let (Some(mnist), Some(fashion)) = (mnist_dir(), data_dir("fashion-mnist")) else { return };
    let port = free_port();
    let ranks: Vec<_> = [mnist, fashion]
        .into_iter()
        .enumerate()
        .map(|(rank, dir)| {
            std::thread::spawn(move || {
                let data = Dataset::load(DatasetKind::Mnist, &dir, Split::Test).unwrap();
                let launch = Launch { rank, world: 2, local_rank: rank, host: "127.0.0.1".into(), port, agent_store: false, attempt: 0, interface: String::new() };
                let team = Team::join(&launch, 30).unwrap();
                let same_data = team.check_same("training data", data.fingerprint()).map_err(|e| e.to_string());
                let same_twice = team.check_same("command line", 42);
                (same_data, same_twice.is_ok())
            })
        })
        .collect();
    let results: Vec<_> = ranks.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results[1].0, Err("rank 1's training data differs from rank 0's: every rank must run the same command on the same data".to_string()));
    assert!(results[0].0.as_ref().unwrap_err().contains("rank 1 failed"), "{:?}", results[0]);
    assert!(results[0].1 && results[1].1, "equal fingerprints pass");
}

#[test]
fn without_torchruns_environment_the_error_says_how_to_launch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_advlens"))
        .args(["train", "--distributed", "--out", tmp.path().join("r").to_str().unwrap(), "--data", tmp.path().to_str().unwrap()])
        .env_remove("RANK")
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("RANK") && text.contains("torchrun --nproc-per-node"), "{text}");
}

/// torchrun from the torch wheel (the one that provides libtorch: its venv's bin or PATH).
fn torchrun() -> PathBuf {
    let venv = std::env::var_os("VIRTUAL_ENV").map(|v| PathBuf::from(v).join("bin/torchrun"));
    let on_path = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("torchrun")).find(|p| p.exists()));
    venv.filter(|p| p.exists()).or(on_path).expect("torchrun not found: it comes with the torch wheel (scripts/setup.sh all, then `. scripts/env.sh && torch_env`)")
}

fn torchrun_job(args: &[String]) -> Child {
    Command::new(torchrun())
        .args(["--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--max-restarts", "1", "--monitor-interval", "0.2"])
        .arg("--master-port")
        .arg(free_port().to_string())
        .args(["--no-python", env!("CARGO_BIN_EXE_advlens"), "train"])
        .args(args)
        .args(["--distributed", "--quiet", "--device", "cpu"])
        .env_remove("ADVLENS_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start torchrun")
}

/// The processes `pid` started (torchrun's workers).
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flat_map(|t| std::fs::read_to_string(t.unwrap().path().join("children")).unwrap_or_default().split_whitespace().map(|c| c.parse().unwrap()).collect::<Vec<u32>>())
        .collect()
}

/// `torchrun --max-restarts 1`: a worker killed mid-run makes torchrun restart both ranks, which
/// resume from the last checkpoint and end with the weights of a job that never stopped.
#[test]
fn torchrun_restarts_a_failed_job_from_its_last_checkpoint_and_ends_like_an_uninterrupted_one() {
    let Some(data) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let opts = ["--arch", "small-cnn", "--mode", "consistent", "--attack-steps", "2", "--epochs", "2", "--limit", "900", "--batch-size", "16", "--checkpoint-every", "4"];
    let whole = torchrun_job(&run_args(&data, &tmp.path().join("whole"), &opts));
    let (out, _) = wait_at_most(whole, Duration::from_secs(300), "the uninterrupted torchrun job");
    ok(&out);

    let broken = tmp.path().join("broken");
    let job = torchrun_job(&run_args(&data, &broken, &opts));
    wait_for_file(&broken.join("last.safetensors"), Duration::from_secs(120));
    let workers = children(job.id());
    assert_eq!(workers.len(), 2, "torchrun should have started 2 workers: {workers:?}");
    assert!(Command::new("kill").args(["-KILL", &workers[1].to_string()]).status().unwrap().success());
    let (out, _) = wait_at_most(job, Duration::from_secs(300), "the restarted torchrun job");
    let text = stderr(&out);
    assert!(out.status.success(), "the restarted job failed: {text}");
    assert!(text.contains("restart 1 of the job: resuming"), "torchrun did not restart the job (was it already done?): {text}");
    let diff = max_relative_difference(&tmp.path().join("whole/last.safetensors"), &broken.join("last.safetensors"));
    eprintln!("restarted vs uninterrupted 2-rank job: relative weight difference {diff:.2e}");
    assert!(diff <= 1e-6, "the restarted job ended {diff:.3e} away from the uninterrupted one");
    let metrics = std::fs::read_to_string(broken.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "one metrics line per epoch after the restart: {metrics}");
}

/// `advlens attack | eval | analyze --distributed`: the ranks take the batches in turn and
/// exchange their rows; the adversarial set, the eval report, the analysis report and the atlas
/// equal one process's byte for byte.
#[test]
fn sharded_attack_eval_and_analyze_equal_one_process_exactly() {
    let Some(data) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let path = |p: &str| tmp.path().join(p).to_str().unwrap().to_string();
    let d = data.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_advlens")).args(args).args(["--quiet", "--device", "cpu"]).env_remove("ADVLENS_DATA").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    run(&["train", "--data", d, "--arch", "small-cnn", "--width", "8", "--epochs", "1", "--limit", "600", "--out", &path("run")]);
    run(&["export", "--run", &path("run"), "--data", d, "--samples", "4", "--out", &path("model")]);
    // Two ranks and one process: the same command, each rank run as `advlens ARGS --distributed`.
    let two_ranks = |args: &[String]| {
        let port = free_port();
        let outs = [0, 1].map(|r| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_advlens"));
            c.args(args).args(["--distributed", "--quiet", "--device", "cpu"]);
            c.env("RANK", r.to_string()).env("WORLD_SIZE", "2").env("MASTER_ADDR", "127.0.0.1").env("MASTER_PORT", port.to_string()).env_remove("ADVLENS_DATA");
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        });
        outs.map(|c| c.wait_with_output().unwrap()).iter().for_each(|o| {
            ok(o);
        });
    };
    let read = |p: &str| std::fs::read(tmp.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    // attack: random targets and PGD starts drawn per batch (3 batches of 100).
    let attack = |out: &str| -> Vec<String> {
        ["attack", "--models", &path("model"), "--data", d, "--attack", "pgd", "--target", "random", "--steps", "3", "--limit", "300", "--batch-size", "100", "--out", &path(out)]
            .map(String::from)
            .to_vec()
    };
    run(&attack("adv").iter().map(String::as_str).collect::<Vec<_>>());
    two_ranks(&attack("adv-two"));
    assert!(read("adv/meta.json") == read("adv-two/meta.json"), "attack: the 2-rank meta.json differs");
    assert!(read("adv/images.safetensors") == read("adv-two/images.safetensors"), "attack: the 2-rank images differ");

    // eval: PGD with random starts and 2 restarts, 3 batches of 100.
    let eval = |out: &str| -> Vec<String> {
        ["eval", "--bundle", &path("model"), "--data", d, "--attacks", "fgsm,pgd5", "--restarts", "2", "--limit", "300", "--batch-size", "100", "--json", &path(out)]
            .map(String::from)
            .to_vec()
    };
    run(&eval("eval.json").iter().map(String::as_str).collect::<Vec<_>>());
    two_ranks(&eval("eval-two.json"));
    let report = String::from_utf8(read("eval.json")).unwrap();
    assert!(report.contains("pgd5"), "{report}");
    assert_eq!(report, String::from_utf8(read("eval-two.json")).unwrap(), "eval: the 2-rank report differs");
    let analyze = |out: &str| -> Vec<String> {
        ["analyze", "--model", &path("model"), "--adv", &path("adv"), "--data", d, "--limit", "700", "--top-k", "10", "--atlas", "--out", &path(out)]
            .map(String::from)
            .to_vec()
    };
    run(&analyze("one").iter().map(String::as_str).collect::<Vec<_>>());
    two_ranks(&analyze("two"));
    let report = |dir: &str| std::fs::read_to_string(tmp.path().join(dir).join("analysis.json")).unwrap();
    let (one, two) = (report("one"), report("two"));
    assert!(one.contains("\"real_images\": 700"), "{one}");
    assert_eq!(one, two, "the 2-rank report differs from the single-process one");
    let files = |dir: &str| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(tmp.path().join(dir).join("atlas"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let atlas = files("one");
    assert!(!atlas.is_empty());
    assert!(atlas == files("two"), "the atlases differ");
}

/// Ctrl-C on one rank stops both after the same step; rank 0 saves, and the job resumes in
/// one process (the batches do not depend on the number of ranks) to the weights of one
/// uninterrupted process.
#[test]
fn ctrl_c_on_one_rank_stops_the_job_and_any_number_of_ranks_resumes_it() {
    let Some(data) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let opts = ["--arch", "small-cnn", "--epochs", "2", "--limit", "2500", "--batch-size", "16", "--checkpoint-every", "5"];
    ok(&single(&run_args(&data, &tmp.path().join("whole"), &opts)));

    let job = tmp.path().join("job");
    let args = run_args(&data, &job, &opts);
    let port = free_port();
    let (zero, one) = (rank(0, 2, port, &args, &[]), rank(1, 2, port, &args, &[]));
    wait_for_file(&job.join("last.safetensors"), Duration::from_secs(120));
    assert!(Command::new("kill").args(["-INT", &one.id().to_string()]).status().unwrap().success());
    let outs = [zero, one].map(|c| wait_at_most(c, Duration::from_secs(60), "an interrupted rank").0);
    assert_eq!(outs.each_ref().map(|o| o.status.code()), [Some(1), Some(1)], "{} | {}", stderr(&outs[0]), stderr(&outs[1]));
    assert!(stderr(&outs[0]).contains("continue with `advlens train --resume"), "{}", stderr(&outs[0]));
    assert!(std::fs::read_to_string(job.join("metrics.jsonl")).unwrap_or_default().lines().count() < 2, "stopped before the end");

    let resumed = Command::new(env!("CARGO_BIN_EXE_advlens"))
        .args(["train", "--resume", "--out", job.to_str().unwrap(), "--quiet", "--device", "cpu", "--threads", "1"])
        .output()
        .unwrap();
    ok(&resumed);
    let diff = max_relative_difference(&tmp.path().join("whole/last.safetensors"), &job.join("last.safetensors"));
    eprintln!("2 ranks interrupted, resumed in 1 process, vs 1 process: relative weight difference {diff:.2e}");
    assert!(diff <= 1e-5, "{diff:.3e}");
}
