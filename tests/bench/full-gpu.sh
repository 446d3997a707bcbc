#!/usr/bin/env bash
# The `full` reproduction on CIFAR-10, as one run for a lent GPU machine (15 minutes of device
# time, minutes of which go to starting it). That machine has PyTorch but no Rust and no
# network, so build here and carry the binary and the data (../shared/docs/toolchain.md §7):
#
#   cargo build --release -p advlens-trainer        # with torch_env (scripts/env.sh)
#   mkdir -p runs/gpu-data && cp target/release/advlens runs/gpu-data/ \
#       && cp ../shared/datasets/cifar10-jpg.tar.gz runs/gpu-data/
#   # then, through the device tool, carrying runs/gpu-data:
#   ADVLENS_BIN=runs/gpu-data/advlens CIFAR=runs/gpu-data/cifar10-jpg.tar.gz tests/bench/full-gpu.sh
#
# Expected on one H200 (docs/reproduction/README.md, "The full preset"): about 8 minutes with
# --jobs 6, training 18 models being most of it. The run stops after FULL_SECONDS (default 540)
# with an interrupt, so what finished comes back either way: report, results, timings and logs
# go to $OUT (or runs/full-gpu), the models stay behind.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="${ADVLENS_BIN:-target/release/advlens}"
cifar="${CIFAR:-runs/gpu-data/cifar10-jpg.tar.gz}"
keep="${OUT:-runs/full-gpu}"
work="${WORK:-runs/full-gpu-work}"
mkdir -p "$keep" "$work/data/cifar10"
keep="$(cd "$keep" && pwd)"
t0=$SECONDS
say() { echo "[$((SECONDS - t0)) s] $*" | tee -a "$keep/summary.txt"; }

torch_lib="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" \
    || { echo "PyTorch is needed on this machine for libtorch's libraries" >&2; exit 1; }
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -x "$bin" ] || { echo "no advlens binary at $bin (ADVLENS_BIN)" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$keep/gpu.txt"
say "advlens: $("$bin" bench-step --device cuda --steps 1 --warmup 1 2>&1 | tail -1)"
if [ ! -d "$work/data/cifar10/train" ]; then
    tar xzf "$cifar" -C "$work/data/cifar10" || { echo "cannot unpack $cifar (CIFAR)" >&2; exit 1; }
fi
say "CIFAR-10 unpacked: $(find "$work/data/cifar10/train" -type f | wc -l) training images"

# The per-batch cost that the expected times rest on, measured here (a few seconds each).
for cfg in "resnet pgd" "vgg consistent" "alexnet standard"; do
    set -- $cfg
    say "bench-step $1 width 32 $2 (5 attack steps, batch 64): $("$bin" bench-step --device cuda --dataset cifar10 \
        --arch "$1" --width 32 --mode "$2" --attack-steps 5 --batch-size 64 --steps 30 --warmup 5 2>&1 | tail -1)"
done

start=$SECONDS
timeout -s INT "${FULL_SECONDS:-540}" "$bin" reproduce --preset full --dataset cifar10 --data "$work/data/cifar10" \
    --out "$work/repro" --jobs "${JOBS:-6}" --threads 2 > "$keep/reproduce.log" 2>&1
say "reproduce --preset full --dataset cifar10: exit $? after $((SECONDS - start)) s"
(cd "$work/repro" && cp -r report.md results.json timings.json ./*.png logs "$keep/" 2>/dev/null)
say "kept in $keep: $(ls "$keep" | tr '\n' ' ')"
