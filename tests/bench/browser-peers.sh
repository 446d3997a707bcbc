#!/usr/bin/env bash
# Times advlens's engines in headless Chromium next to onnxruntime-web and TensorFlow.js, in one
# browser run, with the peer harness of ../shared/bench/peers (or $ADVLENS_PEERS).
#   tests/bench/browser-peers.sh [extra run-bench.mjs args]      ~10 minutes on 2 cores
# Writes target/peer-bench/results-advlens.{md,json}; docs/benchmarks.md quotes them.
#   ADVLENS_BENCH_ONLY   configurations to run (a substring of their names; default threads=1)
#   ADVLENS_BENCH_RUNS   timed calls per measurement (default 30)
#   ADVLENS_BENCH_CHECK=1  then fail if an advlens result differs from the reference outputs
#                          (tests/bench/check-peer-results.mjs; what the test suite's short run uses)
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
