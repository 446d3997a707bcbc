#!/usr/bin/env bash
# Builds the explorer for production into a folder to copy to any static host, at any sub-path:
#   scripts/build-web.sh [OUT_DIR]     (default: dist)
# trunk's release build (relative URLs, no dev-server reload script), then wasm-opt -Oz from
# the npm package binaryen (Debian's binaryen 108 mishandles rustc's reference types).
# Prints the sizes before and after. Needs `scripts/setup.sh web` first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
out="${1:-dist}"
wasm_opt=web/tools/node_modules/binaryen/bin/wasm-opt
[ -x "$wasm_opt" ] || die "no $wasm_opt: run scripts/setup.sh web"
stage "building the explorer (trunk, release) into $out"
wasm_env trunk build --release --offline --dist "$out"
stage "optimising the wasm (wasm-opt -Oz)"
for wasm in "$out"/*.wasm; do
    before=$(stat -c %s "$wasm")
    node "$wasm_opt" -Oz --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-mutable-globals --enable-multivalue --enable-simd "$wasm" -o "$wasm.tmp"
    mv "$wasm.tmp" "$wasm"
    after=$(stat -c %s "$wasm")
    echo "$(basename "$wasm"): $((before / 1024)) KB -> $((after / 1024)) KB ($(gzip -9c "$wasm" | wc -c | awk '{printf "%d", $1/1024}') KB gzipped)" >&2
done
if grep -q "__trunk_address__\|TRUNK_ADDRESS" "$out/index.html"; then
    die "$out/index.html carries trunk's dev reload script: build with 'trunk build', not 'trunk serve'"
fi
echo "built $out/ ($(du -sh "$out" | cut -f1)); serve it with any static server" >&2
