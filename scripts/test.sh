#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs the native tests (libtorch and
# lavapipe included), the shared engines in headless Chromium (CPU and WebGPU), and the
# explorer end to end in Chromium with and without WebGPU. Prints each stage's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

timings=()
timed() {
    local name="$1"; shift
    stage "$name"
    local t0=$SECONDS
    "$@"
    timings+=("$(printf '%5ds  %s' $((SECONDS - t0)) "$name")")
}
report() { printf '\n== stage durations\n' >&2; printf '%s\n' "${timings[@]}" >&2; }
trap report EXIT

# Datasets for the data-dependent tests; they skip with a message when this is absent.
export ADVLENS_DATASETS="${ADVLENS_DATASETS:-$PWD/../shared/datasets}"
[ -d "$ADVLENS_DATASETS/mnist" ] || echo "note: no datasets at $ADVLENS_DATASETS: data-dependent tests will skip" >&2

timed "setup" scripts/setup.sh all

native_tests() {
    torch_env
    export VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
    # lavapipe is installed by setup: a missing adapter is a failure here, not a skip.
    ADVLENS_REQUIRE_GPU=1 cargo test --workspace
}
timed "native tests (libtorch, lavapipe)" native_tests

browser_unit_tests() {
    wasm_env env CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
        CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=120 \
        cargo test -p advlens-shared --target wasm32-unknown-unknown --test browser
}
timed "shared engines in headless Chromium (wasm32, CPU + WebGPU)" browser_unit_tests

timed "build the explorer (production: trunk + wasm-opt)" scripts/build-web.sh dist

# The page's trace numbers are compared with the CLI built by the native tests above.
timed "explorer end to end in Chromium (WebGPU and CPU)" env ADVLENS_BIN="$PWD/target/debug/advlens" node tests/e2e/explorer.mjs dist

timed "explorer budget (payload, first prediction, main-thread tasks)" node tests/bench/page-budget.mjs dist 3

# The browser benchmark, short: advlens's CPU (wasm) and WebGPU engines on the peer harness's
# models, every output checked against the harness's float64 references (correctness, not time).
browser_bench_check() {
    if [ ! -f "${ADVLENS_PEERS:-$PWD/../shared/bench/peers}/run-bench.mjs" ]; then
        echo "note: no peer harness at ../shared/bench/peers (set ADVLENS_PEERS): the short browser benchmark did not run" >&2
        return 0
    fi
    ADVLENS_BENCH_ONLY=advlens ADVLENS_BENCH_RUNS=2 ADVLENS_BENCH_WARMUP=1 ADVLENS_BENCH_CHECK=1 tests/bench/browser-peers.sh
}
timed "browser benchmark, short (advlens's outputs vs the harness's references)" browser_bench_check
