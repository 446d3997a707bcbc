//! Feeds arbitrary bytes to the bundle loader; it must return `Ok` or `Err`, never panic,
//! abort or allocate without bound. Input layout: a little-endian u16 length `n`, then `n`
//! bytes of `model.json`, then the bytes of `weights.safetensors`.
#![no_main]

use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::{Bundle, Tensor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (json, weights) = rest.split_at(len);
    if let Ok(bundle) = Bundle::from_bytes(json, weights) {
        // Whatever loads must also run: the engine trusts validation.
        let [c, h, w] = bundle.input_shape();
        if c * h * w <= 1 << 16 {
            let engine = CpuEngine::new(Arc::new(bundle));
            let _ = engine.forward(&Tensor::zeros(vec![1, c, h, w]));
        }
    }
});
