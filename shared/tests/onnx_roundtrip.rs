//! Bundle -> ONNX -> bundle: every reference case (all layer types) comes back with the same
//! weights, the same class names and mean/std, the same layer names (dropout aside, which ONNX
//! readers drop) and bit-identical outputs on the CPU engine.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::model::{Bundle, Op};
use advlens_shared::onnx::{export, import, ImportOptions};
use advlens_shared::testing::{random_weights, reference_cases, Rng};
use advlens_shared::Tensor;

#[test]
fn every_reference_case_round_trips_through_onnx() {
    let mut rng = Rng::new(5);
    for (what, mut spec) in reference_cases() {
        spec.input.mean = vec![0.25; spec.input.channels];
        spec.input.std = vec![0.5; spec.input.channels];
        let weights = random_weights(&mut rng, &spec);
        let bundle = Bundle::new(spec.clone(), weights).unwrap();
        let bytes = export(&bundle).unwrap();
        let back = import(&bytes, &ImportOptions { name: spec.name.clone(), ..Default::default() }).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(back.weights(), bundle.weights(), "{what}: weights");
        assert_eq!(back.classes(), bundle.classes(), "{what}: class names");
        assert_eq!((&back.spec().input.mean, &back.spec().input.std), (&spec.input.mean, &spec.input.std), "{what}: normalisation");
        let layers = |b: &Bundle| b.spec().nodes.iter().filter(|n| n.op != Op::Dropout).map(|n| (n.name.clone(), n.op.clone())).collect::<Vec<_>>();
        assert_eq!(layers(&back), layers(&bundle), "{what}: layers");
        let [c, h, w] = bundle.input_shape();
        let x = Tensor::new(vec![2, c, h, w], (0..2 * c * h * w).map(|i| ((i * 37) % 101) as f32 / 100.0).collect()).unwrap();
        let (a, b) = (CpuEngine::new(Arc::new(bundle)).forward(&x).unwrap(), CpuEngine::new(Arc::new(back)).forward(&x).unwrap());
        assert_eq!(a.data(), b.data(), "{what}: outputs");
    }
}
