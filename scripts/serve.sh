#!/usr/bin/env bash
# The main job: install what is missing, build the explorer with the bundled models, and serve
# it on http://127.0.0.1:8080 (trunk rebuilds on changes; Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh web
port="${ADVLENS_PORT:-8080}"
stage "building and serving the explorer"
echo "serving the explorer on http://127.0.0.1:$port once the build below finishes (Ctrl-C stops it)" >&2
exec env $(wasm_uses_rustup || echo PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort) \
    CARGO_TARGET_DIR="$PWD/target/wasm" trunk serve --release --offline --address 127.0.0.1 --port "$port"
