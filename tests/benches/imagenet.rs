//! An ImageNet-size model (an imported torchvision resnet18, 224 px, 1000 classes) on the shared
//! engines next to libtorch (CPU, 1 thread), one image: forward, and forward + input gradient.
//! The WebGPU engine runs natively on whatever adapter wgpu finds (lavapipe on the CI machine).
//!
//!     tests/bench/imagenet224.sh        (exports, imports, then runs this with the bundle)
//!
//! `ADVLENS_BENCH_MODEL` names the bundle folder.

use std::sync::Arc;

use advlens_shared::engine::gpu::GpuEngine;
use advlens_shared::engine::{cpu::CpuEngine, Objective};
use advlens_shared::model::Bundle;
use advlens_shared::testing::{random_images, Rng};
use advlens_trainer::net::Net;
use criterion::{criterion_group, criterion_main, Criterion};
use tch::{nn, Device, Kind};

fn imagenet(c: &mut Criterion) {
    let dir = std::env::var("ADVLENS_BENCH_MODEL").expect("ADVLENS_BENCH_MODEL: a bundle folder (tests/bench/imagenet224.sh makes one)");
    tch::set_num_threads(1);
    let bundle = Arc::new(Bundle::load(&dir).expect("the bundle loads"));
    let [ch, h, w] = bundle.input_shape();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = Net::new(&vs.root(), bundle.spec());
    net.load_weights(bundle.weights()).unwrap();
    let cpu = CpuEngine::new(bundle.clone());
    let gpu = pollster::block_on(GpuEngine::new(bundle.clone()));
    let objective = Objective::CrossEntropy { target: 3 };
    let x = random_images(&mut Rng::new(1), [1, ch, h, w]);
    let xt = tch::Tensor::from_slice(x.data()).view([1, ch as i64, h as i64, w as i64]);
    let targets = tch::Tensor::full([1], 3, (Kind::Int64, Device::Cpu));

    let mut group = c.benchmark_group(format!("{}-{h}px", bundle.spec().name));
    group.sample_size(10);
    group.bench_function("forward/advlens-cpu", |b| b.iter(|| cpu.forward(&x).unwrap()));
    group.bench_function("forward/libtorch-cpu", |b| b.iter(|| tch::no_grad(|| net.forward(&xt))));
    group.bench_function("forward+input-grad/advlens-cpu", |b| b.iter(|| cpu.gradient(&x, &objective, &[]).unwrap()));
    group.bench_function("forward+input-grad/libtorch-cpu", |b| {
        b.iter(|| {
            let x = xt.shallow_clone().set_requires_grad(true);
            let loss = net.forward(&x).cross_entropy_for_logits(&targets);
            tch::Tensor::run_backward(&[&loss], &[&x], false, false)
        })
    });
    match &gpu {
        Ok(gpu) => {
            let adapter = gpu.adapter().name.clone();
            eprintln!("webgpu adapter: {adapter}");
            group.bench_function("forward/advlens-webgpu", |b| b.iter(|| pollster::block_on(gpu.forward(&x)).unwrap()));
            group.bench_function("forward+input-grad/advlens-webgpu", |b| b.iter(|| pollster::block_on(gpu.gradient(&x, &objective, &[])).unwrap()));
        }
        Err(e) => eprintln!("no WebGPU adapter, its rows are left out: {e}"),
    }
    group.finish();
}

criterion_group!(benches, imagenet);
criterion_main!(benches);
