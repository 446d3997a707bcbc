# Shared settings of the project's scripts. Source it: `. scripts/env.sh`.
# Everything installed lives outside the repository so that clean clones reuse it.
ADVLENS_CACHE="${ADVLENS_CACHE:-$HOME/.cache/advlens}"
TORCH_VERSION=2.11.0
TORCH_VENV="$ADVLENS_CACHE/torch-$TORCH_VERSION"
# For the ONNX import tests (trainer/tests/onnx_import.rs): torchvision to match torch.
TORCHVISION_VERSION=0.26.0
TIMM_VERSION=1.0.31
ONNX_VERSION=1.23.2
ONNXSCRIPT_VERSION=0.7.2
ONNXRUNTIME_VERSION=1.32.0
# Keras models for the import tests: Keras 3 on the torch backend in the torch venv, and on
# TensorFlow (exported through tf2onnx) in a venv of its own.
KERAS_VERSION=3.15.1
TENSORFLOW_VERSION=2.21.0
TF2ONNX_VERSION=1.17.0
KERAS_TF_VENV="$ADVLENS_CACHE/keras-tf-$TENSORFLOW_VERSION"
TRUNK_VERSION=0.21.14
# Must equal the `wasm-bindgen` pin in Cargo.toml.
WASM_BINDGEN_VERSION=0.2.130
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

# libtorch for tch: the torch wheel's libraries, found through the venv's python.
torch_env() {
    export LIBTORCH_USE_PYTORCH=1
    export VIRTUAL_ENV="$TORCH_VENV"
    export PATH="$TORCH_VENV/bin:$PATH"
    # For trainer/tests/onnx_import.rs's Keras models on TensorFlow.
    export ADVLENS_KERAS_TF_PYTHON="$KERAS_TF_VENV/bin/python"
}

# How wasm32 is built here: `rustup` when its wasm32 target is installed, otherwise Debian's
# rustc-web with std built from source. Use as: wasm_env <command...>
wasm_uses_rustup() {
    rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown
}
wasm_env() {
    if wasm_uses_rustup; then
        CARGO_TARGET_DIR="$PWD/target/wasm" "$@"
    else
        # Debian's toolchain first; its own target dir so the two compilers do not
        # invalidate each other's host artifacts.
        PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
            CARGO_TARGET_DIR="$PWD/target/wasm" "$@"
    fi
}

stage() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
