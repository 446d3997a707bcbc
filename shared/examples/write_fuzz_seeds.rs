//! Writes seed inputs for the `bundle_loader` fuzz target: small valid bundles of every layer
//! type, in the target's layout (u16 LE length of model.json, the JSON, the safetensors bytes);
//! with a second folder, every reference case as ONNX for the `onnx_import` target.
//!
//!     cargo run -p advlens-shared --example write_fuzz_seeds -- shared/fuzz/corpus/bundle_loader shared/fuzz/corpus/onnx_import

use advlens_shared::model::{Bundle, Op};
use advlens_shared::testing::{chain_spec, random_bundle, random_weights, reference_cases, residual_spec, Rng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: write_fuzz_seeds <corpus dir>")?;
    std::fs::create_dir_all(&dir)?;
    let conv = |cin, cout, k, s, p| Op::Conv2d { in_channels: cin, out_channels: cout, kernel: k, stride: s, padding: p, groups: 1, dilation: 1 };
    let specs = [
        chain_spec([1, 4, 4], vec![conv(1, 2, 3, 1, 1), Op::Relu, Op::MaxPool2d { kernel: 2, stride: 2, padding: 0 }, Op::Flatten, Op::Linear { in_features: 8, out_features: 3 }], 3),
        chain_spec(
            [2, 6, 6],
            vec![conv(2, 3, 3, 2, 1), Op::BatchNorm2d { channels: 3, eps: 1e-5 }, Op::AvgPool2d { kernel: 3, stride: 1, padding: 1 }, Op::Dropout, Op::GlobalAvgPool, Op::Linear { in_features: 3, out_features: 2 }],
            2,
        ),
        residual_spec(),
    ];
    let mut rng = Rng::new(7);
    for (i, spec) in specs.into_iter().enumerate() {
        let weights = random_weights(&mut rng, &spec);
        let (json, weights) = Bundle::new(spec, weights)?.to_bytes()?;
        let mut seed = u16::try_from(json.len())?.to_le_bytes().to_vec();
        seed.extend(json);
        seed.extend(weights);
        std::fs::write(format!("{dir}/seed-{i}"), seed)?;
    }
    if let Some(onnx_dir) = std::env::args().nth(2) {
        std::fs::create_dir_all(&onnx_dir)?;
        for (i, (_, spec)) in reference_cases().into_iter().enumerate() {
            let bytes = advlens_shared::onnx::export(&random_bundle(&mut rng, spec))?;
            std::fs::write(format!("{onnx_dir}/reference-case-{i}.onnx"), bytes)?;
        }
    }
    Ok(())
}
