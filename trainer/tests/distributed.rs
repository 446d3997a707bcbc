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
