#!/usr/bin/env bash
# The trainer on CUDA, in one short run for a lent GPU machine (no Rust there: build here and
# carry the binary, see ../shared/docs/toolchain.md §7):
#   1. whether libtorch sees the GPU (through advlens, and through PyTorch);
#   2. training-step times, advlens vs PyTorch eager on the same GPU (tests/bench/train-step.sh);
#   3. `advlens reproduce --preset smoke`, then `--preset quick`, on CUDA, within what time is left.
#     ADVLENS_BIN=target/release/advlens MNIST=runs/gpu-data/mnist OUT=runs/gpu tests/bench/gpu-check.sh
# Env: QUICK_SECONDS (300): how long the quick reproduction may run before it is stopped (its
# finished steps and timings.json are kept; rerunning continues it).
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="${ADVLENS_BIN:-target/release/advlens}"
mnist="${MNIST:-runs/gpu-data/mnist}"
out="${OUT:-runs/gpu}"          # what to keep: summary, logs, reports
work="${WORK:-runs/gpu-work}"   # models and adversarial sets
mkdir -p "$out" "$work"
out="$(cd "$out" && pwd)"
torch_lib="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
t0=$SECONDS
say() { echo "[$((SECONDS - t0)) s] $*" | tee -a "$out/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
say "PyTorch: $(python3 -c 'import torch; print(torch.__version__, "cuda available:", torch.cuda.is_available())')"
say "advlens: $("$bin" bench-step --device cuda --steps 1 --warmup 1 2>&1 | tr '\n' ' ')"

for cfg in "small-cnn mnist standard 10 64" "small-cnn mnist pgd 10 64" "small-cnn mnist consistent 10 64" \
           "resnet cifar10 consistent 10 128" "vgg cifar10 pgd 10 128"; do
    line=$(ADVLENS_BIN="$bin" DEVICE=cuda ROUNDS=3 STEPS=30 tests/bench/train-step.sh $cfg 2>&1 | tail -3)
    say "$line"
done

repro() { # PRESET SECONDS
    local dir="$work/repro-$1-cuda"
    local start=$SECONDS
    timeout -s INT "$2" "$bin" reproduce --preset "$1" --dataset mnist --data "$mnist" --out "$dir" --jobs 4 --threads 3 \
        > "$out/repro-$1.log" 2>&1
    say "reproduce --preset $1 on CUDA: exit $? after $((SECONDS - start)) s (log: repro-$1.log)"
    # Keep what is worth bringing back: the report, figures, results, timings and logs.
    mkdir -p "$out/repro-$1"
    (cd "$dir" && cp -r report.md results.json timings.json ./*.png logs "$out/repro-$1/" 2>/dev/null)
}
repro smoke 120
repro quick "${QUICK_SECONDS:-300}"
say "done"
