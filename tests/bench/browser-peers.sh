#!/usr/bin/env bash
# Times advlens's engines in headless Chromium next to onnxruntime-web and TensorFlow.js, in one
# browser run, with the peer harness of ../shared/bench/peers (or $ADVLENS_PEERS).
#   tests/bench/browser-peers.sh [extra run-bench.mjs args]      ~10 minutes on 2 cores
# Writes target/peer-bench/results-advlens.{md,json}; docs/benchmarks.md quotes them.
#   ADVLENS_BENCH_ONLY   configurations to run (a substring of their names; default threads=1)
#   ADVLENS_BENCH_RUNS   timed calls per measurement (default 30)
#   ADVLENS_BENCH_CHECK=1  then fail if an advlens result differs from the reference outputs
#                          (tests/bench/check-peer-results.mjs; what the test suite's short run uses)
#   ADVLENS_BENCH_224=1  instead: torchvision's resnet18 at 224 px (random weights, exported to ONNX
#                        and imported), one image: forward, forward + input gradient and (wasm only)
#                        PGD-20, advlens cpu / webgpu beside onnxruntime-web wasm / webgpu on the same
#                        file and on its gradient graph (tests/bench/peer224.py); ~8 minutes a round;
#                        writes results-224.{md,json}
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
peers="${ADVLENS_PEERS:-$PWD/../shared/bench/peers}"
[ -f "$peers/run-bench.mjs" ] || die "no peer harness at $peers: set ADVLENS_PEERS to the folder holding run-bench.mjs"
work=target/peer-bench
mkdir -p "$work"
cp -r "$peers/." "$work/"
stage "peer models and packages"
if [ ! -f "$work/models/cifar.json" ]; then
    (cd "$work" && python3 -m venv venv && ./venv/bin/pip install -q -r requirements.txt && mkdir -p models && ./venv/bin/python gen_models.py)
fi
[ -d "$work/node_modules/onnxruntime-web" ] || (cd "$work" && npm install --no-audit --no-fund --loglevel=error)
stage "advlens web package"
wasm_env cargo build --release -p advlens-web --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir "$work/advlens-pkg" target/wasm/wasm32-unknown-unknown/release/advlens_web.wasm
cp tests/bench/advlens-adapter.mjs "$work/adapters/advlens.mjs"
if [ "${ADVLENS_BENCH_224:-0}" = 1 ]; then
    stage "resnet18 at 224 px for the harness"
    torch_env
    out224=target/bench224
    mkdir -p "$out224"
    [ -f "$out224/resnet18-224-torchscript.onnx" ] || python3 tests/onnx/export_models.py "$out224" --imagenet resnet18 2>&1 | grep -v Warning >&2 || true
    cargo build --release -j2 -p advlens-trainer >&2
    rm -rf "$out224/resnet18-raw"
    target/release/advlens import "$out224/resnet18-224-torchscript.onnx" --out "$out224/resnet18-raw" --quiet >&2
    python3 tests/bench/peer224.py "$out224/resnet18-224-torchscript.onnx" "$out224/resnet18-raw" "$work" resnet18 >&2
    stage "benchmark, 224 px (one Chromium run)"
    cd "$work"
    # WebGPU here is SwiftShader (seconds per call at 224 px): three timed calls, and the model's
    # one-step PGD copy run once as a check only (the first `model=` of a query is the one read).
    one="batches=1&threads=1&pgdRuns=3"
    gpu="model=resnet18-1step&runs=3&batches=1&threads=1&pgdRuns=0"
    node run-bench.mjs --models resnet18 --runs "${ADVLENS_BENCH_RUNS:-5}" --warmup 1 --only 224 \
        --extra "ort wasm 224|engine=ort&build=jsep&ep=wasm&$one" \
        --extra "ort webgpu (native EP) 224|engine=ort&build=webgpu&ep=webgpu&$gpu" \
        --extra "advlens cpu 224|engine=advlens&device=cpu&$one" \
        --extra "advlens webgpu 224|engine=advlens&device=webgpu&$gpu" \
        --out results-224 "$@"
    echo "results: $work/results-224.md" >&2
    exit 0
fi
stage "benchmark (one Chromium run)"
cd "$work"
node run-bench.mjs --models mnist,cifar --runs "${ADVLENS_BENCH_RUNS:-30}" --warmup "${ADVLENS_BENCH_WARMUP:-10}" --only "${ADVLENS_BENCH_ONLY:-threads=1}" \
    --extra 'advlens cpu|engine=advlens&device=cpu&ep=wasm&threads=1' \
    --extra 'advlens webgpu|engine=advlens&device=webgpu&threads=1' \
    --out results-advlens "$@"
echo "results: $work/results-advlens.md" >&2
if [ "${ADVLENS_BENCH_CHECK:-0}" = 1 ]; then
    cd - >/dev/null
    node tests/bench/check-peer-results.mjs "$work/results-advlens.json" advlens
fi
