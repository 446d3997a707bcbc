//! `advlens import` against the tools that wrote the models: PyTorch builds them (the project's
//! four architectures, torchvision's resnet18 and mobilenet_v2, a model of concatenated
//! branches with sigmoid, leaky ReLU, pad, dilation and ceil_mode), both of its ONNX exporters write them,
//! onnxruntime runs them; the imported bundle must give onnxruntime's logits and PyTorch's
//! input gradients on the shared CPU engine, to 1e-4 of their largest value. Models the importer
//! cannot map must be refused naming the op and the node. Each imported bundle, written back as
//! ONNX by `advlens pack --out X.onnx`, must run in onnxruntime with the engine's logits.
//!
//! Needs the torch venv with onnx, onnxscript, onnxruntime and torchvision
//! (`scripts/setup.sh all` installs them); it fails, not skips, without them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::engine::Objective;
use advlens_shared::model::{Bundle, InputSpec};
use advlens_shared::Tensor;

fn python() -> PathBuf {
    std::env::var_os("VIRTUAL_ENV").map_or_else(|| PathBuf::from("python3"), |v| Path::new(&v).join("bin/python"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn advlens(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_advlens")).args(args).arg("--quiet").output().expect("run advlens")
}

#[derive(serde::Deserialize)]
struct Reference {
    shape: Vec<usize>,
    input: Vec<f32>,
    mean: Vec<f32>,
    std: Vec<f32>,
    logits: Vec<f32>,
    gradient: Vec<f32>,
    gradient_f32: Vec<f32>,
}

/// Largest difference relative to the largest reference value.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn join(v: &[f32]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

#[test]
fn imported_models_match_onnxruntime_and_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    // The project's architectures, narrow so that the test stays quick.
    let mut specs = Vec::new();
    for (arch, channels, side) in [("small-cnn", 1, 28), ("alexnet", 3, 32), ("vgg", 3, 32), ("resnet", 3, 32)] {
        let input = InputSpec { channels, height: side, width: side, mean: vec![0.4; channels], std: vec![0.25; channels] };
        let classes = (0..10).map(|k| format!("c{k}")).collect();
        let spec = advlens_trainer::arch::build(arch, arch, input, classes, 4).unwrap();
        let path = tmp.path().join(format!("{arch}.json"));
        std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
        specs.push(path);
    }
    let out = tmp.path().join("onnx");
    let status = Command::new(python())
        .arg(repo().join("tests/onnx/export_models.py"))
        .arg(&out)
        .args(&specs)
        .status()
        .expect("run python: is the torch venv active (scripts/env.sh torch_env)?");
    assert!(status.success(), "tests/onnx/export_models.py failed: run scripts/setup.sh all for torch, onnx, onnxruntime, torchvision");

    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_none_or(|e| e != "onnx") || name.starts_with("refused") {
            continue;
        }
        checked.push(check_against_references(&path, tmp.path()));
    }
    checked.sort();
    eprintln!("matched: {}", checked.join(", "));
    // 4 architectures x 2 exporters + resnet18 x 2 + mobilenet_v2 (depthwise convolutions, ReLU6)
    // + the branches model (concat, sigmoid, leaky ReLU, pad, dilation, ceil_mode) x 2
    // + mobilenet_v3_small and efficientnet_b0 (squeeze-and-excitation, hard swish, SiLU)
    // + Keras-style `same` padding at stride 2 (unequal sides), as Pad nodes and as auto_pad
    // + a decoder with transposed convolutions and a nearest upsampling x 2
    // + timm's ghostnet_050, mixnet_s and rexnet_100 (channel slices and splits)
    // + timm's tf_efficientnet_b0 x 2 (TensorFlow "same" padding from Shape, Ceil, Clip)
    // + timm's convnext_atto x 2 (channel layer norm, erf GELU or Gelu, layer scale)
    // + an instance norm x 2 + bilinear upsampling (half-pixel, aligned corners) x 2.
    assert_eq!(checked.len(), 30, "{checked:?}");

    // An op with no layer behind it is refused, naming the node and the op.
    let bundle_dir = tmp.path().join("bundles/refused");
    let o = advlens(&["import", out.join("refused-elu.onnx").to_str().unwrap(), "--out", bundle_dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: importing") && stderr.contains("node `") && stderr.contains("`Elu`") && stderr.contains("supported: Conv"), "{stderr}");
    assert!(!bundle_dir.exists(), "a failed import wrote {}", bundle_dir.display());
}

/// Keras lays images out channels last. Its two ONNX paths, torch.onnx on the torch backend
/// (transposes around every convolution, float casts everywhere) and tf2onnx on TensorFlow's
/// (one transpose after the input), write the same three models (a course's MNIST CNN with
/// Flatten and softmax, depthwise / separable / residual blocks, MobileNetV2); each must give
/// Keras's logits and input gradients, as for the PyTorch models above.
#[test]
fn keras_models_match_keras_and_onnxruntime() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("onnx");
    let tensorflow = std::env::var_os("ADVLENS_KERAS_TF_PYTHON")
        .map(PathBuf::from)
        .expect("ADVLENS_KERAS_TF_PYTHON is unset: `. scripts/env.sh && torch_env` sets it (scripts/setup.sh all installs TensorFlow's venv)");
    for (backend, python) in [("torch", python()), ("tensorflow", tensorflow)] {
        let status = Command::new(&python)
            .env("KERAS_BACKEND", backend)
            .arg(repo().join("tests/onnx/export_keras.py"))
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e} (scripts/setup.sh all installs Keras)", python.display()));
        assert!(status.success(), "tests/onnx/export_keras.py on Keras's {backend} backend failed");
    }
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "onnx") {
            checked.push(check_against_references(&path, tmp.path()));
        }
    }
    checked.sort();
    eprintln!("matched: {}", checked.join(", "));
    assert_eq!(checked.len(), 6, "{checked:?}");
    // The bundle says what the importer changed: the layout it read, the softmax it left out.
    let bundle = Bundle::load(tmp.path().join("bundles/keras-cnn-tensorflow")).unwrap();
    let source = &bundle.spec().provenance.extra["imported_from"];
    assert_eq!(source["input_layout"], "NHWC (read as NCHW)", "{source}");
    assert_eq!(source["dropped_output_op"], "Softmax", "{source}");
    // Without --mean / --std, a graph that divides its input by 255 itself (Rescaling(1/255))
    // is fed 0-255 pixels: the bundle's normalisation of [0, 1] pixels is then the identity.
    let plain = tmp.path().join("bundles/keras-cnn-plain");
    let o = advlens(&["import", out.join("keras-cnn-torch.onnx").to_str().unwrap(), "--out", plain.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // ... and says so, with the other things it decided on its own.
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("fed 0-255 pixels") && said.contains("--std 1"), "{said}");
    assert!(said.contains("final Softmax was left out") && said.contains("channels last (NHWC)"), "{said}");
    let bundle = Bundle::load(&plain).unwrap();
    let input = &bundle.spec().input;
    assert!(input.mean == [0.0] && (input.std[0] - 1.0).abs() < 1e-5, "{input:?}");
    assert!(bundle.spec().provenance.extra["imported_from"]["pixels"].as_str().is_some_and(|p| p.starts_with("0-255")));
    // A model that normalises [0, 1] pixels itself keeps them.
    let blocks = tmp.path().join("bundles/keras-blocks-plain");
    let o = advlens(&["import", out.join("keras-blocks-tensorflow.onnx").to_str().unwrap(), "--out", blocks.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input = Bundle::load(&blocks).unwrap().spec().input.clone();
    assert!((input.mean[0] - 0.4).abs() < 1e-5 && (input.std[2] - 0.25).abs() < 1e-5, "{input:?}");
}

/// Imports `onnx` (written by tests/onnx/export_models.py beside its `.json` references) into a
/// bundle under `work`, and requires the CPU engine's logits to be onnxruntime's, its input
/// gradient PyTorch's, and the bundle written back as ONNX to run in onnxruntime with the
/// engine's logits, all to 1e-4 relative. Returns a line with the measured differences.
fn check_against_references(onnx: &Path, work: &Path) -> String {
    let name = onnx.file_stem().unwrap().to_string_lossy().into_owned();
    let reference_path = onnx.with_extension("json");
    let reference: Reference = serde_json::from_slice(&std::fs::read(&reference_path).unwrap()).unwrap();
    // A relative comparison of vanishing numbers would compare nothing.
    let largest = reference.logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(largest > 1e-3, "{name}: the reference logits are all below {largest}: the test model is degenerate");
    let steepest = reference.gradient.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(steepest > 1e-4, "{name}: the reference input gradient is all below {steepest}: the test model is degenerate");
    let bundle_dir = work.join("bundles").join(&name);
    let o = advlens(&["import", onnx.to_str().unwrap(), "--out", bundle_dir.to_str().unwrap(), "--mean", &join(&reference.mean), "--std", &join(&reference.std)]);
    assert!(o.status.success(), "import {name}: {}", String::from_utf8_lossy(&o.stderr));
    let bundle = Arc::new(Bundle::load(&bundle_dir).unwrap());
    let engine = CpuEngine::new(bundle);
    let x = Tensor::new(reference.shape.clone(), reference.input.clone()).unwrap();
    let logits = engine.forward(&x).unwrap();
    let e = relative_error(logits.data(), &reference.logits);
    assert!(e < 1e-4, "{name}: logits differ from onnxruntime's by {e} (relative)");
    let g = engine.gradient(&x, &Objective::Logit { class: 3 }, &[]).unwrap();
    let eg = relative_error(g.input.data(), &reference.gradient);
    // Held to 1e-4 of the float64 gradient, or, where float32 itself cannot get that close
    // (random deep nets at 224 px: PyTorch's own float32 gradient is 1.6% off for resnet18, 5%
    // for mobilenet_v2), to the same order as PyTorch's float32 error (twice it: two float32
    // computations in different summation orders; a wrong gradient is off by ~100%).
    let bar = (2.0 * relative_error(&reference.gradient_f32, &reference.gradient)).max(1e-4);
    assert!(eg < bar, "{name}: input gradient differs from PyTorch's float64 one by {eg} (relative), twice PyTorch's float32 one's is {bar}");
    // And back out: the bundle written as ONNX by advlens runs in onnxruntime on the raw
    // pixels (its normalisation inside) with the engine's logits.
    let exported = work.join("bundles").join(format!("{name}.onnx"));
    let o = advlens(&["pack", "--model", bundle_dir.to_str().unwrap(), "--out", exported.to_str().unwrap()]);
    assert!(o.status.success(), "pack {name} as ONNX: {}", String::from_utf8_lossy(&o.stderr));
    let ort = Command::new(python()).arg(repo().join("tests/onnx/run_ort.py")).arg(&exported).arg(&reference_path).output().unwrap();
    assert!(ort.status.success(), "onnxruntime on advlens's export of {name}: {}", String::from_utf8_lossy(&ort.stderr));
    let ort_logits: Vec<f32> = serde_json::from_slice(&ort.stdout).unwrap();
    let ee = relative_error(&ort_logits, logits.data());
    assert!(ee < 1e-4, "{name}: onnxruntime on the exported file differs from the engine by {ee}");
    format!("{name} (logits {e:.1e}, gradient {eg:.1e} (bar: {bar:.1e}), exported {ee:.1e})")
}

/// torchvision's resnet18, mobilenet_v2, vgg11_bn and alexnet at ImageNet's 224 px and 1000
/// classes, against onnxruntime and PyTorch as above. Opt-in (minutes, 3 GB of memory for
/// vgg11_bn's 133 million weights); `ADVLENS_IMAGENET_MODELS=resnet18,alexnet` picks some.
#[test]
#[ignore = "opt-in: cargo test -p advlens-trainer --test onnx_import -- --ignored (224 px models, minutes)"]
fn imagenet_size_models_match_onnxruntime_and_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("onnx");
    let models = std::env::var("ADVLENS_IMAGENET_MODELS").unwrap_or_else(|_| "resnet18,mobilenet_v2,vgg11_bn,alexnet".into());
    let status = Command::new(python())
        .arg(repo().join("tests/onnx/export_models.py"))
        .arg(&out)
        .arg("--imagenet")
        .args(models.split(','))
        .status()
        .expect("run python: is the torch venv active (scripts/env.sh torch_env)?");
    assert!(status.success(), "tests/onnx/export_models.py --imagenet failed");
    for name in models.split(',') {
        let started = std::time::Instant::now();
        let line = check_against_references(&out.join(format!("{name}-224-torchscript.onnx")), tmp.path());
        eprintln!("matched {line} in {:.1} s", started.elapsed().as_secs_f64());
    }
}

#[test]
fn files_that_are_not_importable_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"\xff\xff\xff\xff not protobuf").unwrap();
    let o = advlens(&["import", junk.to_str().unwrap(), "--out", tmp.path().join("b").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("junk.onnx") && stderr.contains("not an ONNX model file"), "{stderr}");
    let o = advlens(&["import", tmp.path().join("none.onnx").to_str().unwrap(), "--out", tmp.path().join("b").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("none.onnx"));
}
