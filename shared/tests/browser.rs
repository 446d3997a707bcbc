//! The shared engines in wasm32, in a real browser (headless Chromium through
//! wasm-bindgen-test-runner; `webdriver.json` enables WebGPU, which is SwiftShader there).
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use advlens_shared::engine::{cpu::CpuEngine, gpu::GpuEngine, Objective};
use advlens_shared::model::{Bundle, SampleSet};
use advlens_shared::tensor::argmax;
use advlens_shared::testing::{fresh_seed, max_rel_diff, max_scaled_diff, random_bundle, random_images, reference_cases, Rng};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const MODEL: &[u8] = include_bytes!("../../web/assets/models/mnist-small/model.json");
const WEIGHTS: &[u8] = include_bytes!("../../web/assets/models/mnist-small/weights.safetensors");
const SAMPLES: &[u8] = include_bytes!("../../web/assets/models/mnist-small/samples.json");

fn predictions(logits: &advlens_shared::Tensor) -> Vec<usize> {
    (0..logits.shape()[0]).map(|i| argmax(logits.row(i))).collect()
}

#[wasm_bindgen_test]
async fn default_model_predicts_like_libtorch_on_cpu_and_webgpu() {
    let bundle = Arc::new(Bundle::from_bytes(MODEL, WEIGHTS).unwrap());
    let samples = SampleSet::from_json(SAMPLES).unwrap();
    let want: Vec<usize> = samples.samples.iter().map(|s| s.reference.predicted).collect();
    let x = samples.batch().unwrap();

    let cpu = CpuEngine::new(bundle.clone()).forward(&x).unwrap();
    assert_eq!(predictions(&cpu), want, "CPU engine in wasm32 disagrees with libtorch");

    // The runner starts Chromium with --enable-unsafe-webgpu: an adapter must exist.
    let gpu = GpuEngine::new(bundle).await.expect("WebGPU adapter in headless Chromium");
    let logits = gpu.forward(&x).await.unwrap();
    assert_eq!(predictions(&logits), want, "WebGPU engine disagrees with libtorch");
}

/// The concept world draws the same bytes in wasm32 as natively (the constant is the native
/// fingerprint, checked by tests/concepts.rs).
#[wasm_bindgen_test]
fn concept_world_is_byte_identical_to_native() {
    let world = advlens_shared::concepts::ConceptWorld::default();
    let images: Vec<_> = (0..24).map(|i| world.generate(2026, i)).collect();
    assert_eq!(advlens_shared::concepts::fingerprint(&images), advlens_shared::testing::CONCEPTS_FINGERPRINT_2026_32);
}

#[wasm_bindgen_test]
async fn webgpu_equals_cpu_on_random_models_in_the_browser() {
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    for (name, spec) in reference_cases() {
        let bundle = Arc::new(random_bundle(&mut rng, spec));
        let [c, h, w] = bundle.input_shape();
        let x = random_images(&mut rng, [3, c, h, w]);
        let cpu = CpuEngine::new(bundle.clone());
        let gpu = GpuEngine::new(bundle).await.unwrap();
        let want = cpu.forward(&x).unwrap();
        let got = gpu.forward(&x).await.unwrap();
        let diff = max_rel_diff(got.data(), want.data());
        assert!(diff < 1e-4, "{name}, seed {seed}: WebGPU differs from CPU by {diff}");

        let objective = Objective::CrossEntropy { target: 0 };
        let want = cpu.gradient(&x, &objective, &[]).unwrap().input;
        let got = gpu.gradient(&x, &objective, &[]).await.unwrap().input;
        let diff = max_scaled_diff(got.data(), want.data());
        assert!(diff < 1e-4, "{name}, seed {seed}: WebGPU input gradient differs from CPU by {diff}");
    }
}

/// What the explorer runs live: a PGD attack and tracing, on the WebGPU engine in the browser,
/// give what the CPU engine gives (fresh random model and image).
#[wasm_bindgen_test]
async fn attack_and_trace_on_webgpu_match_the_cpu_engine() {
    use advlens_shared::analysis::trace::trace;
    use advlens_shared::attack::{attack, AttackSpec};
    use advlens_shared::engine::Engine;
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    let bundle = Arc::new(random_bundle(&mut rng, reference_cases()[0].1.clone()));
    let x = random_images(&mut rng, [1, 1, 28, 28]);
    let cpu = Engine::cpu(bundle.clone());
    let gpu = Engine::webgpu(bundle).await.expect("WebGPU adapter in headless Chromium");
    let spec = AttackSpec::pgd(0.1, 5);
    let a = attack(&cpu, &x, 2, &spec).await.unwrap();
    let b = attack(&gpu, &x, 2, &spec).await.unwrap();
    let differing = a.image.data().iter().zip(b.image.data()).filter(|(p, q)| (*p - *q).abs() > 1e-4).count();
    assert!(differing * 200 <= a.image.len(), "seed {seed}: {differing} pixels differ between the engines' PGD");
    let (ta, tb) = (trace(&cpu, &x, 3, "relu4").await.unwrap(), trace(&gpu, &x, 3, "relu4").await.unwrap());
    for (p, q) in ta.iter().zip(&tb) {
        assert!((p.logit_drop - q.logit_drop).abs() < 1e-3 * (1.0 + p.logit_drop.abs()), "seed {seed}: {p:?} vs {q:?}");
    }
}

/// The matrix product's simd128 and portable kernels in wasm32 against a plain sum, on shapes
/// around their tile edges, with a transposed operand (the dense layers' weights).
#[wasm_bindgen_test]
fn matrix_product_kernels_match_a_plain_sum_in_wasm() {
    use advlens_shared::engine::cpu::gemm::{gemm_with, Kernel, Mat};
    let kernels = Kernel::available();
    assert_eq!(kernels, vec![Kernel::Simd128, Kernel::Portable], "the wasm build lost simd128");
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    for (m, n, k) in [(1, 1, 1), (5, 9, 3), (4, 8, 300), (13, 130, 27)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let want: Vec<f32> = (0..m * n).map(|ij| (0..k).map(|p| a[(ij / n) * k + p] as f64 * b[(ij % n) * k + p] as f64).sum::<f64>() as f32).collect();
        for &kernel in &kernels {
            let mut got = vec![0.0; m * n];
            gemm_with(kernel, m, n, k, Mat::rows(&a, k), Mat::transposed(&b, k), &mut got, n);
            let err = max_rel_diff(&got, &want);
            assert!(err < 1e-4, "seed {seed}: {kernel:?} ({m},{n},{k}) relative error {err:e}");
        }
    }
}

/// The 2x2 max pool's input gradient (simd128 in wasm: four windows per step) against its
/// definition: each window's gradient goes to the first tap, in scan order, equal to the
/// window's maximum as `b > a ? b : a` from -inf finds it (NaN never wins); many ties (zeros,
/// as after a ReLU), NaN among the taps, rows of 1 to 9 windows and odd widths.
#[wasm_bindgen_test]
fn max_pool_gradient_goes_to_the_first_maximum_in_wasm() {
    use advlens_shared::engine::cpu::backward::max_pool2d_backward;
    use advlens_shared::engine::cpu::layers::Window;
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    let levels = [0.0, 0.0, 0.0, 1.0, 2.0, -1.0, f32::NAN];
    for ow in 1..=9 {
        let (oh, width, planes) = (3, 2 * ow + ow % 2, 2);
        let g = Window { batch: 1, in_channels: planes, height: 2 * oh, width, kernel: 2, stride: 2, padding: 0, dilation: 1, out_height: oh, out_width: ow };
        let x: Vec<f32> = (0..planes * 2 * oh * width).map(|_| levels[(rng.next_u64() % levels.len() as u64) as usize]).collect();
        let d_y: Vec<f32> = (0..planes * oh * ow).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let got = max_pool2d_backward(&x, &d_y, g);
        let mut want = vec![0.0f32; x.len()];
        for (p, (i, j)) in (0..planes).flat_map(|p| (0..oh).flat_map(move |i| (0..ow).map(move |j| (p, (i, j))))) {
            let base = p * 2 * oh * width;
            let at = [0, 1, width, width + 1].map(|o| base + 2 * i * width + 2 * j + o);
            let max = at.iter().fold(f32::NEG_INFINITY, |m, &k| if x[k] > m { x[k] } else { m });
            let first = at.iter().position(|&k| x[k] == max).unwrap_or(3);
            want[at[first]] = d_y[(p * oh + i) * ow + j];
        }
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(a.to_bits() == b.to_bits(), "seed {seed}, {ow} windows a row: d_x[{k}] = {a}, expected {b}");
        }
    }
}
