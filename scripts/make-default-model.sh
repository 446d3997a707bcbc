#!/usr/bin/env bash
# Reproduces the explorer's default model, web/assets/models/mnist-small, from MNIST:
#   scripts/make-default-model.sh [MNIST_DIR]     (default: $ADVLENS_DATA or ../shared/datasets/mnist)
# Two epochs of the small CNN on the CPU with one thread and seed 0, then export with 16 samples.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
data="${1:-${ADVLENS_DATA:-$PWD/../shared/datasets/mnist}}"
[ -d "$data" ] || die "no MNIST folder at $data: pass the folder holding train-images-idx3-ubyte[.gz] and friends"
scripts/setup.sh all
torch_env
cargo build -p advlens-trainer  # the dev profile optimises dependencies; libtorch does the work
bin=target/debug/advlens
run=runs/mnist-small
rm -rf "$run"
"$bin" train --data "$data" --dataset mnist --arch small-cnn --name mnist-small \
    --epochs 2 --batch-size 64 --lr 1e-3 --seed 0 --device cpu --threads 1 --out "$run"
"$bin" export --run "$run" --data "$data" --samples 16 --out web/assets/models/mnist-small
scripts/make-atlas.sh web/assets/models/mnist-small "$data"   # index.json already says "atlas": true
du -sh web/assets/models/mnist-small

# The second bundled model, mnist-pgd, is the `mnist-pgd` run of `scripts/experiments.sh quick`
# (PGD adversarial training at eps 0.3, evaluated with PGD-100 x 5 restarts), exported with:
#   target/release/advlens export --run runs/experiments/quick/mnist-pgd --data "$data" --out web/assets/models/mnist-pgd
#   scripts/make-atlas.sh web/assets/models/mnist-pgd "$data"
