#!/usr/bin/env bash
# Installs what advlens needs, skipping whatever is already there (a no-op run takes seconds).
#   scripts/setup.sh web    wasm32 toolchain, wasm-bindgen CLI, trunk, wasm-opt   (to build and serve the explorer)
#   scripts/setup.sh all    the above, plus Chromium + chromedriver + playwright-core,
#                           lavapipe, and libtorch (torch from PyPI in a venv) (to run the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
what="${1:-all}"
case "$what" in web|all) ;; *) die "usage: scripts/setup.sh [web|all]" ;; esac

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them with your package manager"
    echo "installing Debian packages: ${missing[*]}" >&2
    if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq || die "apt-get update failed"; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "could not install Debian packages: ${missing[*]}"
}

stage "wasm32 toolchain"
if wasm_uses_rustup; then
    echo "rustup's wasm32-unknown-unknown target is installed" >&2
elif rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    echo "installed rustup's wasm32-unknown-unknown target" >&2
else
    echo "rustup cannot provide wasm32 std here; using Debian's rustc-web and building std from source" >&2
    apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22
fi

stage "wasm-bindgen CLI $WASM_BINDGEN_VERSION"
grep -q "wasm-bindgen = \"=$WASM_BINDGEN_VERSION\"" Cargo.toml \
    || die "scripts/env.sh pins wasm-bindgen $WASM_BINDGEN_VERSION but Cargo.toml pins another version: make them equal"
if [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    echo "present" >&2
else
    # No --locked: with it, resolution fails on a yanked webpki-roots.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force \
        || die "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION failed (is crates.io reachable?)"
fi

stage "trunk $TRUNK_VERSION"
if [ "$(trunk --version 2>/dev/null)" = "trunk $TRUNK_VERSION" ]; then
    echo "present" >&2
else
    cargo install trunk --version "$TRUNK_VERSION" --locked --force \
        || die "cargo install trunk $TRUNK_VERSION failed (is crates.io reachable?)"
fi

stage "wasm-opt (npm package binaryen, for the production build)"
if [ -x web/tools/node_modules/binaryen/bin/wasm-opt ]; then
    echo "present" >&2
else
    command -v npm >/dev/null || die "npm is missing: install Node.js 18 or newer"
    (cd web/tools && npm ci --no-audit --no-fund --loglevel=error) \
        || die "npm ci in web/tools failed (is the npm registry reachable?)"
fi

[ "$what" = all ] || exit 0

stage "Chromium, chromedriver, lavapipe, gloo headers"
apt_install chromium chromium-driver mesa-vulkan-drivers
# gloo's headers: the trainer's c10d shim (advlens train --distributed) compiles against them.
apt_install libgloo-dev
[ -x /usr/bin/chromium ] || die "no /usr/bin/chromium after installing Debian's chromium"

stage "playwright-core (drives the system Chromium; downloads no browser)"
if [ -f tests/e2e/node_modules/playwright-core/package.json ]; then
    echo "present" >&2
else
    command -v npm >/dev/null || die "npm is missing: install Node.js 18 or newer"
    (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
        || die "npm ci in tests/e2e failed (is the npm registry reachable?)"
fi

stage "libtorch: torch==$TORCH_VERSION in $TORCH_VENV"
if [ -x "$TORCH_VENV/bin/python" ] && "$TORCH_VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "present" >&2
else
    command -v python3 >/dev/null || die "python3 is missing: it provides libtorch through the torch wheel"
    rm -rf "$TORCH_VENV"
    python3 -m venv "$TORCH_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$TORCH_VENV/bin/pip" install -q "torch==$TORCH_VERSION" || die "pip install torch==$TORCH_VERSION failed (is PyPI reachable?)"
fi
stage "ONNX test tools: torchvision, timm, onnx, onnxscript, onnxruntime in $TORCH_VENV"
if "$TORCH_VENV/bin/python" -c "import torchvision, timm, onnx, onnxscript, onnxruntime" 2>/dev/null; then
    echo "present" >&2
else
    "$TORCH_VENV/bin/pip" install -q "torchvision==$TORCHVISION_VERSION" "timm==$TIMM_VERSION" "onnx==$ONNX_VERSION" "onnxscript==$ONNXSCRIPT_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" \
        || die "pip install of the ONNX test tools failed (is PyPI reachable?)"
fi
stage "Keras $KERAS_VERSION (torch backend) in $TORCH_VENV"
if KERAS_BACKEND=torch "$TORCH_VENV/bin/python" -c "import keras, sys; sys.exit(keras.__version__ != '$KERAS_VERSION')" 2>/dev/null; then
    echo "present" >&2
else
    "$TORCH_VENV/bin/pip" install -q "keras==$KERAS_VERSION" || die "pip install keras==$KERAS_VERSION failed (is PyPI reachable?)"
fi
stage "Keras on TensorFlow $TENSORFLOW_VERSION with tf2onnx in $KERAS_TF_VENV"
if "$KERAS_TF_VENV/bin/python" -c "import keras, tensorflow, tf2onnx, onnxruntime, sys; sys.exit(tensorflow.__version__ != '$TENSORFLOW_VERSION')" 2>/dev/null; then
    echo "present" >&2
else
    rm -rf "$KERAS_TF_VENV"
    python3 -m venv "$KERAS_TF_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$KERAS_TF_VENV/bin/pip" install -q "tensorflow-cpu==$TENSORFLOW_VERSION" "tf2onnx==$TF2ONNX_VERSION" "keras==$KERAS_VERSION" \
        "onnx==$ONNX_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" \
        || die "pip install of TensorFlow, tf2onnx and Keras failed (is PyPI reachable?)"
fi
echo "setup complete" >&2
