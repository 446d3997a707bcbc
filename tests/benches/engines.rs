//! Latency of the shared CPU engine next to libtorch (CPU, 1 thread) on the bundled default
//! model: forward, and forward + input gradient, per image and per batch of 64.
//!
//!     . scripts/env.sh && torch_env && cargo bench -p advlens-tests --bench engines
//!
//! Criterion prints both in one run; docs/benchmarks.md records the ratios.

use std::path::PathBuf;
use std::sync::Arc;

use advlens_shared::engine::{cpu::CpuEngine, Objective};
use advlens_shared::model::{Bundle, WEIGHTS_FILE};
use advlens_shared::testing::{random_images, Rng};
use advlens_shared::Tensor;
use advlens_trainer::net::Net;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tch::{nn, Device, Kind};

fn default_model() -> Bundle {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/assets/models/mnist-small");
    assert!(dir.join(WEIGHTS_FILE).is_file(), "no default model at {}", dir.display());
    Bundle::load(&dir).expect("the default model loads")
}

fn to_tch(x: &Tensor) -> tch::Tensor {
    let shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    tch::Tensor::from_slice(x.data()).view(shape.as_slice())
}

fn engines(c: &mut Criterion) {
    tch::set_num_threads(1);
    let bundle = default_model();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = Net::new(&vs.root(), bundle.spec());
    net.load_weights(bundle.weights()).unwrap();
    let cpu = CpuEngine::new(Arc::new(bundle));
    let objective = Objective::CrossEntropy { target: 3 };
    let mut rng = Rng::new(1);

    let mut group = c.benchmark_group("mnist-small");
    group.sample_size(20);
    for batch in [1usize, 64] {
        let x = random_images(&mut rng, [batch, 1, 28, 28]);
        let xt = to_tch(&x);
        group.bench_with_input(BenchmarkId::new("forward/advlens-cpu", batch), &x, |b, x| b.iter(|| cpu.forward(x).unwrap()));
        group.bench_with_input(BenchmarkId::new("forward/libtorch-cpu", batch), &xt, |b, x| b.iter(|| tch::no_grad(|| net.forward(x))));
        group.bench_with_input(BenchmarkId::new("forward+input-grad/advlens-cpu", batch), &x, |b, x| {
            b.iter(|| cpu.gradient(x, &objective, &[]).unwrap())
        });
        let targets = tch::Tensor::full([batch as i64], 3, (Kind::Int64, Device::Cpu));
        group.bench_with_input(BenchmarkId::new("forward+input-grad/libtorch-cpu", batch), &xt, |b, x| {
            b.iter(|| {
                let x = x.shallow_clone().set_requires_grad(true);
                let loss = net.forward(&x).cross_entropy_for_logits(&targets);
                tch::Tensor::run_backward(&[&loss], &[&x], false, false)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
