//! Malformed inputs, one table: bundles, atlases, sample sets, datasets, flags and run
//! directories. Every case must end with exit code 2, no panic, one `error:` line that names
//! the offending thing, and nothing written anywhere but inside its `--out` — the fixtures are
//! compared before and after every case, and each case runs in an empty working directory.
//!
//! `ADVLENS_SHOW_ERRORS=1 cargo test -p advlens-trainer --test malformed -- --nocapture` prints
//! every case's error. The fixtures are synthetic (a tiny IDX dataset, a run trained on it for one epoch, its
//! bundle), so this file needs no downloaded dataset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A case: the arguments (`{fx}` is replaced by the fixture folder), and what the error line
/// must contain.
struct Case {
    name: &'static str,
    args: &'static str,
    expect: &'static [&'static str],
}

const fn case(name: &'static str, args: &'static str, expect: &'static [&'static str]) -> Case {
    Case { name, args, expect }
}

const CASES: &[Case] = &[
    // Training flags: each names its flag before any work.
    case("train lr negative", "train --data {fx}/d28 --out OUT --lr=-1", &["--lr must be a positive number", "-1"]),
    case("train lr NaN", "train --data {fx}/d28 --out OUT --lr NaN", &["--lr", "NaN"]),
    case("train batch size 0", "train --data {fx}/d28 --out OUT --batch-size 0", &["--batch-size must be at least 1"]),
    case("train epochs 0", "train --data {fx}/d28 --out OUT --epochs 0", &["--epochs must be at least 1"]),
    case("train attack steps 0", "train --data {fx}/d28 --out OUT --mode pgd --attack-steps 0", &["--attack-steps must be at least 1"]),
    case("train step size negative", "train --data {fx}/d28 --out OUT --mode pgd --step-size=-0.1", &["--step-size", "-0.1"]),
    case("train trades beta negative", "train --data {fx}/d28 --out OUT --mode trades --beta=-1", &["--beta", "-1"]),
    case("train lambda NaN", "train --data {fx}/d28 --out OUT --mode consistent --lambda NaN", &["--lambda", "NaN"]),
    case("train epsilon 0", "train --data {fx}/d28 --out OUT --mode pgd --epsilon 0", &["--epsilon must be in (0, 1]"]),
    case("train epsilon 2", "train --data {fx}/d28 --out OUT --mode pgd --epsilon 2", &["--epsilon", "2"]),
    case("train val fraction 1", "train --data {fx}/d28 --out OUT --val-fraction 1", &["--val-fraction"]),
    case("train limit 0", "train --data {fx}/d28 --out OUT --limit 0", &["--limit must be at least 1"]),
    case("train warmup negative", "train --data {fx}/d28 --out OUT --epsilon-warmup=-2", &["--epsilon-warmup"]),
    case("train unknown mode", "train --data {fx}/d28 --out OUT --mode fancy", &["unknown mode `fancy`"]),
    case("train unknown distance", "train --data {fx}/d28 --out OUT --mode consistent --distance l1", &["unknown --distance `l1`", "sum (the paper's squared norm)"]),
    case("train unknown arch", "train --data {fx}/d28 --out OUT --arch transformer", &["unknown architecture `transformer`"]),
    case("train unknown schedule", "train --data {fx}/d28 --out OUT --lr-schedule step", &["--lr-schedule", "step"]),
    case("train augment maybe", "train --data {fx}/d28 --out OUT --augment maybe", &["--augment", "maybe"]),
    case("train unknown dataset", "train --data {fx}/d28 --out OUT --dataset imagenet", &["unknown dataset `imagenet`"]),
    // Datasets.
    case("train missing data dir", "train --data {fx}/nowhere --out OUT", &["nowhere", "does not exist"]),
    case("train corrupt idx", "train --data {fx}/corrupt --out OUT", &["train-images-idx3-ubyte", "bad magic"]),
    case("train test split of another size", "train --data {fx}/mixed --out OUT", &["does not fit", "1x32x32", "1x28x28"]),
    case("train one-class folder", "train --dataset folder --data {fx}/oneclass --out OUT", &["1 class", "at least 2"]),
    case("train huge first image", "train --dataset folder --data {fx}/bigfirst --out OUT", &["600x600", "at most 512"]),
    case("train image over the pixel cap", "train --dataset folder --data {fx}/bomb --out OUT", &["100000x100000", "megapixels"]),
    case("train class folder with escape", "train --dataset folder --data {fx}/escape --out OUT", &["control characters", "\\u{1b}"]),
    // Run directories.
    case("resume without a run", "train --resume --out {fx}/d28", &["config.json", "--resume"]),
    case("run dir in use", "train --data {fx}/d28 --out {fx}/run", &["already holds a run", "--resume"]),
    case("resume bit-flipped checkpoint", "train --resume --out {fx}/flipped --epochs 2", &["last.safetensors", "damaged"]),
    case("resume tampered step counter", "train --resume --out {fx}/tampered --epochs 2", &["last.safetensors", "damaged"]),
    case("resume checkpoint of another run", "train --resume --out {fx}/mixedrun --epochs 2", &["written by run", "mixed"]),
    case("resume garbage config", "train --resume --out {fx}/badconfig", &["config.json"]),
    case("eval run with NaN weights", "eval --run {fx}/nanrun --data {fx}/d28", &["best.safetensors", "NaN"]),
    // Evaluation flags and data.
    case("eval epsilon negative", "eval --bundle {fx}/bundle --data {fx}/d28 --epsilon=-0.1", &["--epsilon", "-0.1"]),
    case("eval epsilon NaN", "eval --bundle {fx}/bundle --data {fx}/d28 --epsilon NaN", &["--epsilon", "NaN"]),
    case("eval restarts 0", "eval --bundle {fx}/bundle --data {fx}/d28 --restarts 0", &["--restarts must be at least 1"]),
    case("eval limit 0", "eval --bundle {fx}/bundle --data {fx}/d28 --limit 0", &["--limit must be at least 1"]),
    case("eval unknown attack", "eval --bundle {fx}/bundle --data {fx}/d28 --attacks pgd0", &["unknown attack `pgd0`"]),
    case("eval unknown norm", "eval --bundle {fx}/bundle --data {fx}/d28 --norm l3", &["unknown norm `l3`"]),
    case("eval on images of another size", "eval --bundle {fx}/bundle --data {fx}/d32", &["does not fit", "1x32x32", "1x28x28"]),
    case("eval missing bundle", "eval --bundle {fx}/nowhere --data {fx}/d28", &["nowhere", "model.json"]),
    // Attack flags and data.
    case("attack steps 0", "attack --models {fx}/bundle --data {fx}/d28 --out OUT --steps 0", &["--steps must be at least 1"]),
    case("attack lr 0", "attack --models {fx}/bundle --data {fx}/d28 --out OUT --lr 0", &["--lr must be a positive number"]),
    case("attack epsilon 1.5", "attack --models {fx}/bundle --data {fx}/d28 --out OUT --epsilon 1.5", &["--epsilon", "1.5"]),
    case("attack limit 0", "attack --models {fx}/bundle --data {fx}/d28 --out OUT --limit 0", &["--limit must be at least 1"]),
    case("attack unknown target", "attack --models {fx}/bundle --data {fx}/d28 --out OUT --target most", &["--target `most`"]),
    case("attack unknown split", "attack --models {fx}/bundle --data {fx}/d28 --out OUT --split valid", &["unknown split `valid`"]),
    case("attack on images of another size", "attack --models {fx}/bundle --data {fx}/d32 --out OUT", &["does not fit", "1x32x32"]),
    // Export.
    case("export on images of another size", "export --run {fx}/run --data {fx}/d32 --out OUT", &["does not fit", "1x32x32"]),
    case("export into a folder that is not a bundle", "export --run {fx}/run --out {fx}/notbundle", &["notbundle", "not a model bundle"]),
    case("export unknown checkpoint", "export --run {fx}/run --checkpoint middle --out OUT", &["unknown checkpoint `middle`"]),
    case("export samples 0", "export --run {fx}/run --samples 0 --out OUT", &["--samples must be at least 1"]),
    case("export a folder that is no run", "export --run {fx}/d28 --out OUT", &["model.json", "advlens train"]),
    // Bundles.
    case("bundle with impossible groups", "trace --model {fx}/groups --sample 0", &["groups 16 must divide", "node `"]),
    case("bundle with dilated conv", "trace --model {fx}/dilation --sample 0", &["dilation", "node `"]),
    case("bundle weights cut", "trace --model {fx}/cut --sample 0", &["tensor `", "past the end"]),
    case("bundle weights NaN", "trace --model {fx}/nanweights --sample 0", &["tensor `", "not finite"]),
    case("bundle weights 3e38", "trace --model {fx}/hugeweights --sample 0", &["tensor `", "overflow float32"]),
    case("bundle of another format", "trace --model {fx}/onnx --sample 0", &["not an advlens model bundle"]),
    case("bundle of another version", "trace --model {fx}/v7 --sample 0", &["v7", "advlens export"]),
    case("bundle class name with newline", "trace --model {fx}/newline --sample 0", &["control characters", "\\n"]),
    case("bundle without weights", "trace --model {fx}/noweights --sample 0", &["weights.safetensors"]),
    case("pack a folder that is no bundle", "pack --model {fx}/d28 --out OUT", &["model.json"]),
    // Atlases and sample sets.
    case("atlas patch 2^62", "trace --model {fx}/hugepatch --sample 0", &["atlas.json", "implausible sizes"]),
    case("atlas of another model", "trace --model {fx}/atlasclasses --sample 0", &["atlas.json", "another model"]),
    case("atlas not json", "trace --model {fx}/atlasjunk --sample 0", &["atlas.json", "not a valid atlas"]),
    case("samples not json", "trace --model {fx}/samplesjunk --sample 0", &["samples.json", "not a valid sample set"]),
    // One-image commands.
    case("trace sample out of range", "trace --model {fx}/bundle --sample 99", &["--sample 99"]),
    case("trace class out of range", "trace --model {fx}/bundle --sample 0 --class 42", &["--class 42"]),
    case("trace missing image", "trace --model {fx}/bundle --image {fx}/none.png", &["none.png", "no such file"]),
    case("perturb epsilon 0", "perturb --model {fx}/bundle --sample 0 --epsilon 0", &["--epsilon", "0"]),
    case("perturb steps 0", "perturb --model {fx}/bundle --sample 0 --steps 0", &["--steps must be at least 1"]),
    case("perturb step size negative", "perturb --model {fx}/bundle --sample 0 --step-size=-1", &["--step-size", "-1"]),
    case("perturb target out of range", "perturb --model {fx}/bundle --sample 0 --target 42", &["--target 42"]),
    case("perturb unknown attack", "perturb --model {fx}/bundle --sample 0 --attack deepfool", &["deepfool"]),
    // The study.
    case("reproduce jobs 0", "reproduce --data {fx}/d28 --out OUT --jobs 0", &["--jobs must be at least 1"]),
    case("reproduce unknown preset", "reproduce --data {fx}/d28 --out OUT --preset huge", &["unknown preset `huge`"]),
];

fn advlens(cwd: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_advlens"))
        .args(args)
        .arg("--quiet")
        .current_dir(cwd)
        .env_remove("ADVLENS_DATA")
        .output()
        .expect("run advlens")
}

fn ok(cwd: &Path, args: &str) {
    let args: Vec<String> = args.split_whitespace().map(String::from).collect();
    let out = advlens(cwd, &args);
    assert!(out.status.success(), "advlens {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// MNIST-style IDX files of `n` random `side x side` images in `dir`; `test_side` for t10k.
fn write_idx(dir: &Path, n: usize, side: usize, test_side: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut seed = 7u64;
    let mut byte = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 56) as u8
    };
    for (prefix, side) in [("train", side), ("t10k", test_side)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [n, side, side] {
            images.extend((d as u32).to_be_bytes());
        }
        images.extend((0..n * side * side).map(|_| byte()));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        labels.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

/// An image folder with the given class folders, each holding PNGs of the given sides.
fn write_folder(dir: &Path, classes: &[&str], sides: &[u32]) {
    for split in ["train", "test"] {
        for class in classes {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for (i, &side) in sides.iter().enumerate() {
                image::RgbImage::from_pixel(side, side, image::Rgb([i as u8 * 40, 90, 200])).save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

/// A PNG whose header claims `side x side` pixels (its data is a 1x1 image's): what a
/// decompression bomb looks like to a reader that trusts headers.
fn write_png_claiming(path: &Path, side: u32) {
    let mut bytes = Vec::new();
    image::RgbImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    // IHDR: length (4) at 8, type at 12, width at 16, height at 20, CRC over type+data at 29.
    bytes[16..20].copy_from_slice(&side.to_be_bytes());
    bytes[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the bundle with `model.json` edited.
fn bundle_with_json(fx: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    copy_dir(&fx.join("bundle"), &fx.join(name));
    let path = fx.join(name).join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// A copy of the bundle whose weights' first tensor value is `value`, written as safetensors.
fn bundle_with_weight(fx: &Path, name: &str, value: f32) {
    copy_dir(&fx.join("bundle"), &fx.join(name));
    let path = fx.join(name).join("weights.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[header..header + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Rewrites a checkpoint's metadata entry `key` with `edit` (the tensors stay as they are).
fn edit_checkpoint_metadata(path: &Path, key: &str, edit: impl FnOnce(&str) -> String) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let old = header["__metadata__"][key].as_str().unwrap().to_string();
    header["__metadata__"][key] = edit(&old).into();
    let mut text = serde_json::to_vec(&header).unwrap();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

fn fixtures(fx: &Path) {
    let cwd = fx.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let p = |s: &str| fx.join(s).display().to_string();
    write_idx(&fx.join("d28"), 64, 28, 28);
    write_idx(&fx.join("d32"), 64, 32, 32);
    write_idx(&fx.join("mixed"), 64, 32, 28);
    std::fs::create_dir_all(fx.join("corrupt")).unwrap();
    std::fs::write(fx.join("corrupt/train-images-idx3-ubyte"), b"\x12\x34\x08\x03garbage").unwrap();
    std::fs::write(fx.join("corrupt/train-labels-idx1-ubyte"), b"\x00\x00\x08\x01\x00\x00\x00\x00").unwrap();
    write_folder(&fx.join("oneclass"), &["cat"], &[16, 16]);
    write_folder(&fx.join("bigfirst"), &["cat", "dog"], &[600, 16]);
    write_folder(&fx.join("bomb"), &["cat", "dog"], &[16, 16]);
    write_png_claiming(&fx.join("bomb/train/dog/2.png"), 100_000);
    write_folder(&fx.join("escape"), &["cat", "dog\u{1b}[2J"], &[16]);
    std::fs::create_dir_all(fx.join("notbundle")).unwrap();
    std::fs::write(fx.join("notbundle/thesis.tex"), "precious").unwrap();

    ok(&cwd, &format!("train --data {} --out {} --epochs 1 --batch-size 32 --val-fraction 0 --device cpu", p("d28"), p("run")));
    ok(&cwd, &format!("export --run {} --data {} --samples 4 --out {} --device cpu", p("run"), p("d28"), p("bundle")));

    // Run directories with one thing wrong each.
    copy_dir(&fx.join("run"), &fx.join("flipped"));
    let last = fx.join("flipped/last.safetensors");
    let mut bytes = std::fs::read(&last).unwrap();
    let end = bytes.len() - 3;
    bytes[end] ^= 0x10;
    std::fs::write(&last, bytes).unwrap();
    copy_dir(&fx.join("run"), &fx.join("tampered"));
    edit_checkpoint_metadata(&fx.join("tampered/last.safetensors"), "advlens.train_state", |s| s.replacen("\"epoch\":1", "\"epoch\":0", 1));
    copy_dir(&fx.join("run"), &fx.join("mixedrun"));
    let config = fx.join("mixedrun/config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    c["run_id"] = "0123456789abcdef".into();
    std::fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
    copy_dir(&fx.join("run"), &fx.join("badconfig"));
    std::fs::write(fx.join("badconfig/config.json"), "{ not json").unwrap();
    copy_dir(&fx.join("run"), &fx.join("nanrun"));
    edit_first_tensor(&fx.join("nanrun/best.safetensors"), f32::NAN);

    // Bundles with one thing wrong each.
    bundle_with_json(fx, "groups", |v| v["nodes"][0]["groups"] = 16.into());
    bundle_with_json(fx, "dilation", |v| v["nodes"][0]["dilation"] = 2.into());
    bundle_with_json(fx, "onnx", |v| v["format"] = "onnx".into());
    bundle_with_json(fx, "v7", |v| v["version"] = 7.into());
    bundle_with_json(fx, "newline", |v| v["classes"][3] = "three\nfake line".into());
    bundle_with_weight(fx, "nanweights", f32::NAN);
    bundle_with_weight(fx, "hugeweights", 3e38);
    copy_dir(&fx.join("bundle"), &fx.join("cut"));
    let w = fx.join("cut/weights.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() - 100]).unwrap();
    copy_dir(&fx.join("bundle"), &fx.join("noweights"));
    std::fs::remove_file(fx.join("noweights/weights.safetensors")).unwrap();
    let atlas = |name: &str, json: String| {
        copy_dir(&fx.join("bundle"), &fx.join(name));
        std::fs::create_dir_all(fx.join(name).join("atlas")).unwrap();
        std::fs::write(fx.join(name).join("atlas/atlas.json"), json).unwrap();
    };
    let classes: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    let meta = |classes: &[String], patch: u64| {
        serde_json::json!({"model": "m", "layer": "relu2", "classes": classes, "patch": patch, "receptive_field": 5.0, "top_k": 4, "neurons": []}).to_string()
    };
    atlas("hugepatch", meta(&classes, 1 << 62));
    atlas("atlasclasses", meta(&classes[..3], 8));
    atlas("atlasjunk", "[1, 2".into());
    copy_dir(&fx.join("bundle"), &fx.join("samplesjunk"));
    std::fs::write(fx.join("samplesjunk/samples.json"), "{\"dataset\": 5}").unwrap();
}

/// Sets the first value of the first `net/` tensor of a checkpoint. The checksum no longer
/// matches either, but the reader checks values first: the error must say "NaN".
fn edit_first_tensor(path: &Path, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let (_, info) = header.as_object().unwrap().iter().find(|(k, _)| k.starts_with("net/")).unwrap();
    let start = 8 + n + info["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[start..start + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Every file under `dir` with its length and contents' hash.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.clone(), (0, 0));
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
                out.insert(path, (bytes.len() as u64, hash));
            }
        }
    }
    out
}

#[test]
fn every_malformed_input_is_one_clear_error_and_writes_nothing_outside_out() {
    assert!(CASES.len() >= 50, "the table must cover at least 50 cases, it has {}", CASES.len());
    let tmp = tempfile::tempdir().unwrap();
    let fx = tmp.path().join("fx");
    fixtures(&fx);
    let before = snapshot(&fx);
    let mut failures = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let cwd = tmp.path().join(format!("cwd-{i}"));
        std::fs::create_dir(&cwd).unwrap();
        let out_dir = tmp.path().join(format!("out-{i}"));
        let args: Vec<String> = c
            .args
            .split_whitespace()
            .map(|a| a.replace("{fx}", &fx.display().to_string()).replace("OUT", &out_dir.display().to_string()))
            .collect();
        let out = advlens(&cwd, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("device:") && !l.starts_with("note:")).collect();
        if std::env::var_os("ADVLENS_SHOW_ERRORS").is_some() {
            eprintln!("{:40} {}", c.name, stderr.trim());
        }
        let mut problems = Vec::new();
        if out.status.code() != Some(2) {
            problems.push(format!("exit code {:?}", out.status.code()));
        }
        if stderr.contains("panicked") || stderr.contains("stack backtrace") {
            problems.push("panicked".into());
        }
        match lines.first() {
            Some(first) if first.starts_with("error: ") => {
                for e in c.expect {
                    if !first.contains(e) {
                        problems.push(format!("`{e}` missing"));
                    }
                }
            }
            _ => problems.push("no `error:` first line".into()),
        }
        if lines.len() != 1 {
            problems.push(format!("{} lines on stderr", lines.len()));
        }
        if std::fs::read_dir(&cwd).unwrap().next().is_some() {
            problems.push("wrote into the working directory".into());
        }
        let after = snapshot(&fx);
        if after != before {
            let changed: Vec<_> = after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).chain(before.keys().filter(|k| !after.contains_key(*k)).cloned()).collect();
            problems.push(format!("changed fixtures {changed:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {} — stderr: {}", c.name, problems.join(", "), stderr.trim()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

/// A run copied elsewhere and resumed there continues there: the original is not touched,
/// and nothing is created in the working directory the resume ran from.
#[test]
fn resuming_a_copied_run_touches_only_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, original, copy, cwd) = (tmp.path().join("d28"), tmp.path().join("runA"), tmp.path().join("moved/runA"), tmp.path().join("elsewhere"));
    write_idx(&data, 64, 28, 28);
    std::fs::create_dir(&cwd).unwrap();
    ok(tmp.path(), &format!("train --data {} --out {} --epochs 1 --batch-size 32 --val-fraction 0 --device cpu", data.display(), original.display()));
    copy_dir(&original, &copy);
    let before = snapshot(&original);
    // Relative --out from another working directory, no --data: the run remembers it.
    ok(&cwd, &format!("train --resume --out ../moved/runA --epochs 2 --device cpu"));
    assert_eq!(snapshot(&original), before, "the original run changed");
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "the resume wrote into its working directory");
    let metrics = std::fs::read_to_string(copy.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "the copy ran its second epoch: {metrics}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(copy.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["out_dir"], "../moved/runA", "the copy's config names where it now is");
}
