//! Every matrix-product micro-kernel this CPU runs, timed on the shapes the CPU engine gives it,
//! alternating between kernels so that a load that comes and goes hits them alike.
//!
//!     cargo run --release -p advlens-shared --example gemm_kernels
use std::time::Instant;

use advlens_shared::engine::cpu::gemm::{gemm_with, Kernel, Mat};

fn main() {
    // (m, n, k): a first layer's 9 taps on 64 MNIST images; a Winograd product (32 x 16 filters,
    // 4 images of 7x7 tiles); resnet18's 3x3 convolutions at 56 px (im2col) and at 7 px; a
    // 1x1-like product.
    let shapes = [(16usize, 50176usize, 9usize), (32, 784, 16), (64, 3136, 576), (512, 49, 4608), (64, 784, 64)];
    let kernels = Kernel::available();
    for &(m, n, k) in &shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let mut best = vec![f64::MAX; kernels.len()];
        for round in 0..30 {
            for (i, &kernel) in kernels.iter().enumerate() {
                let t = Instant::now();
                gemm_with(kernel, m, n, k, Mat::rows(&a, k), Mat::rows(&b, n), &mut c, n);
                // The first rounds warm the caches and the packing buffers.
                if round >= 3 {
                    best[i] = best[i].min(t.elapsed().as_secs_f64());
                }
            }
        }
        let line: Vec<String> = kernels
            .iter()
            .zip(&best)
            .map(|(kernel, t)| format!("{kernel:?} {:.3} ms ({:.0} GFLOP/s, {:.2} of the first)", t * 1e3, 2.0 * (m * n * k) as f64 / t / 1e9, t / best[0]))
            .collect();
        println!("{m} x {n} x {k}: {}", line.join(", "));
    }
}
