//! Feeds arbitrary bytes to the ONNX importer: it must return `Ok` or `Err`, never panic,
//! overflow or allocate without bound, and what it accepts must run.
#![no_main]

use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::onnx::{import, ImportOptions};
use advlens_shared::Tensor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = import(data, &ImportOptions::default()) {
        let [c, h, w] = bundle.input_shape();
        if c * h * w <= 1 << 16 {
            let _ = CpuEngine::new(Arc::new(bundle)).forward(&Tensor::zeros(vec![1, c, h, w]));
        }
    }
});
