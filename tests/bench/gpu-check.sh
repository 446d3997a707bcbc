#!/usr/bin/env bash
# The trainer on CUDA, in one short run for a lent GPU machine (no Rust there: build here and
# carry the binary, see ../shared/docs/toolchain.md §7):
#   1. whether libtorch sees the GPU (through advlens, and through PyTorch);
#   2. training-step times, advlens vs PyTorch eager on the same GPU (tests/bench/train-step.sh),
#      also with channels-last and bf16 products (PyTorch under autocast) and model TFLOP/s,
#      and `train --distributed` as 2 ranks sharing the GPU (Gloo) against one process;
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
# The options on (channels-last, bf16 products): against PyTorch with the same options and
# against plain PyTorch eager (f32, contiguous), with the model TFLOP/s for the utilisation.
for cfg in "small-cnn mnist standard 10 64" "resnet cifar10 consistent 10 128" "vgg cifar10 pgd 10 128"; do
    line=$(ADVLENS_BIN="$bin" DEVICE=cuda ROUNDS=2 STEPS=30 FORMAT=channels-last PRECISION=bf16 tests/bench/train-step.sh $cfg 2>&1 | tail -3)
    say "$line"
done

# --distributed on CUDA: 2 ranks sharing the GPU through Gloo (CUDA tensors) vs one process.
dist=(train --data "$mnist" --arch small-cnn --mode consistent --epochs 1 --limit 6000 --batch-size 64
      --checkpoint-every 0 --device cuda --quiet)
rm -rf "$work/dist-one" "$work/dist-two"
start=$SECONDS; "$bin" "${dist[@]}" --out "$work/dist-one" > "$out/dist.log" 2>&1; one=$((SECONDS - start))
start=$SECONDS
torchrun --nproc-per-node 2 --master-addr 127.0.0.1 --master-port 29533 --no-python "$bin" "${dist[@]}" \
    --out "$work/dist-two" --distributed >> "$out/dist.log" 2>&1
say "2 ranks on one GPU (Gloo): exit $? after $((SECONDS - start)) s (1 process: $one s); $(python3 - "$work" <<'PY'
import json, struct, sys, numpy as np
def net(path):  # safetensors: u64 header length, JSON header, raw little-endian f32
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4")
            for k, v in head.items() if k.startswith("net/")}
a, b = net(sys.argv[1] + "/dist-one/last.safetensors"), net(sys.argv[1] + "/dist-two/last.safetensors")
print("largest relative L2 weight difference %.2e" % max(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(a[k]), 1e-12) for k in a))
PY
)"

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
