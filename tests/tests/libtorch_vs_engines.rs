//! The trainer's libtorch networks and the shared engines compute the same numbers.

use std::path::PathBuf;
use std::sync::Arc;

use advlens_shared::engine::{cpu::CpuEngine, gpu};
use advlens_shared::model::{Bundle, SampleSet, SAMPLES_FILE};
use advlens_shared::tensor::argmax;
use advlens_shared::testing::{fresh_seed, max_rel_diff, random_images, reference_cases, Rng};
use advlens_shared::Tensor;
use advlens_trainer::export::to_bundle;
use advlens_trainer::net::Net;
use tch::{nn, Device};

mod common;
use common::to_tch;

fn gpu_device() -> Option<gpu::GpuContext> {
    match pollster::block_on(gpu::request_device()) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("ADVLENS_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("SKIPPED the WebGPU half: {e} (set ADVLENS_REQUIRE_GPU=1 to fail instead)");
            None
        }
        Err(e) => panic!("ADVLENS_REQUIRE_GPU=1 but {e}"),
    }
}

fn predictions(logits: &Tensor) -> Vec<usize> {
    (0..logits.shape()[0]).map(|i| argmax(logits.row(i))).collect()
}

#[test]
fn random_models_forward_like_libtorch_on_both_engines() {
    tch::set_num_threads(1);
    let seed = fresh_seed();
    eprintln!("seed {seed}");
    tch::manual_seed(seed as i64 & 0x7fff_ffff);
    let mut rng = Rng::new(seed);
    let device = gpu_device();
    for (name, spec) in reference_cases() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), &spec);
        // Through bytes, as the browser sees it.
        let (json, weights) = to_bundle(&net, spec).unwrap().to_bytes().unwrap();
        let bundle = Arc::new(Bundle::from_bytes(&json, &weights).unwrap());
        let [c, h, w] = bundle.input_shape();
        let x = random_images(&mut rng, [4, c, h, w]);
        let want = Vec::<f32>::try_from(tch::no_grad(|| net.forward(&to_tch(&x))).flatten(0, -1)).unwrap();

        let cpu = CpuEngine::new(bundle.clone()).forward(&x).unwrap();
        let diff = max_rel_diff(cpu.data(), &want);
        assert!(diff < 1e-4, "{name}, seed {seed}: CPU engine differs from libtorch by {diff}");

        if let Some(context) = &device {
            let engine = pollster::block_on(gpu::GpuEngine::with_context(bundle, context.clone())).unwrap();
            let got = pollster::block_on(engine.forward(&x)).unwrap();
            let diff = max_rel_diff(got.data(), &want);
            assert!(diff < 1e-4, "{name}, seed {seed}: WebGPU engine ({}) differs from libtorch by {diff}", context.adapter.name);
        }
    }
}

fn default_model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/assets/models/mnist-small")
}

#[test]
fn committed_default_model_predicts_its_samples_like_libtorch() {
    let dir = default_model_dir();
    let bundle = Arc::new(Bundle::load(&dir).unwrap());
    let samples = SampleSet::from_json(&std::fs::read(dir.join(SAMPLES_FILE)).unwrap()).unwrap();
    let want: Vec<usize> = samples.samples.iter().map(|s| s.reference.predicted).collect();
    assert!(want.len() >= 8, "the default model ships at least 8 samples");
    let x = samples.batch().unwrap();
    let logits = CpuEngine::new(bundle.clone()).forward(&x).unwrap();
    assert_eq!(predictions(&logits), want, "CPU engine vs libtorch (samples.json)");
    for (i, s) in samples.samples.iter().enumerate() {
        let p = advlens_shared::tensor::softmax(logits.row(i));
        assert!(max_rel_diff(&p, &s.reference.probabilities) < 1e-4, "sample {i}: probabilities differ from libtorch's");
    }
    if let Some(context) = gpu_device() {
        let engine = pollster::block_on(gpu::GpuEngine::with_context(bundle, context)).unwrap();
        assert_eq!(predictions(&pollster::block_on(engine.forward(&x)).unwrap()), want, "WebGPU engine vs libtorch");
    }
}
