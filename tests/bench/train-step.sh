#!/usr/bin/env bash
# The same training step in advlens (libtorch through tch) and in PyTorch eager, in one run,
# alternating rounds so that machine noise hits both; prints both medians and the ratio.
#   tests/bench/train-step.sh [ARCH] [DATASET] [MODE] [ATTACK_STEPS] [BATCH]
# defaults: small-cnn mnist consistent 10 64. Env: ROUNDS (3), STEPS (20), THREADS (1),
# DEVICE (cpu; cuda on a GPU machine), FORMAT (advlens's --memory-format: auto, contiguous or
# channels-last; auto is channels-last on a CPU), PRECISION (f32, or bf16: advlens --precision bf16
# beside PyTorch under torch.autocast(dtype=torch.bfloat16)), PEER_CHANNELS_LAST (1: also time PyTorch with
# the model and images in torch.channels_last, the layout advlens uses on a CPU; 0: skip), ADVLENS_BIN (a prebuilt advlens: no cargo build, no
# torch_env, for a machine without Rust whose python3 has torch, such as the lent GPU machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${ADVLENS_BIN:-}" ]; then
    source scripts/env.sh
    torch_env
    cargo build --release -p advlens-trainer -j2 >&2
    ADVLENS_BIN=target/release/advlens
fi
arch="${1:-small-cnn}"; dataset="${2:-mnist}"; mode="${3:-consistent}"; k="${4:-10}"; batch="${5:-64}"
rounds="${ROUNDS:-3}"; steps="${STEPS:-20}"; threads="${THREADS:-1}"; device="${DEVICE:-cpu}"
format="${FORMAT:-auto}"; peer_cl="${PEER_CHANNELS_LAST:-1}"; precision="${PRECISION:-f32}"
case "$precision" in f32) autocast=off;; bf16) autocast=bf16;; *) echo "PRECISION is f32 or bf16, not $precision" >&2; exit 2;; esac
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
case "$dataset" in cifar10) eps=0.0313725; step=0.0078431;; fashion-mnist) eps=0.1; step=0.01;; *) eps=0.3; step=0.01;; esac
common=(--batch-size "$batch" --steps "$steps" --threads "$threads" --device "$device" --attack-steps "$k" --epsilon "$eps" --step-size "$step")
median_ms() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["median_ms"])' "$1"; }
peer() { median_ms "$(python3 tests/bench/train_step.py "$tmp/model.json" --mode "$mode" --feature-layer "$layer" "$@" "${common[@]}")"; }
ours=(); theirs=(); theirs_cl=(); theirs_f32=(); layout=""; flops=0
for r in $(seq "$rounds"); do
    line=$("$ADVLENS_BIN" bench-step --arch "$arch" --dataset "$dataset" --mode "$mode" --attack pgd --memory-format "$format" --precision "$precision" "${common[@]}" --write-spec "$tmp/model.json" 2>"$tmp/err") || { cat "$tmp/err" >&2; exit 1; }
    ours+=("$(median_ms "$line")")
    layout=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["memory_format"])' "$line")
    flops=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["model_flops"])' "$line")
    layer=$(python3 -c 'import sys; a=sys.argv[1]; print({"alexnet":"relu5","vgg":"relu6","resnet":"block3_out"}.get(a,"relu2"))' "$arch")
    theirs+=("$(peer --autocast "$autocast")")
    if [ "$peer_cl" = 1 ]; then theirs_cl+=("$(peer --channels-last --autocast "$autocast")"); fi
    # With bf16, PyTorch as most people run it too (f32, contiguous): the GPU goal's reference.
    if [ "$precision" != f32 ]; then theirs_f32+=("$(peer --autocast off)"); fi
done
python3 - "$arch" "$dataset" "$mode" "$k" "$batch" "$threads" "$device" "$layout $precision" "$flops" "${ours[*]}" "${theirs[*]}" "${theirs_cl[*]:-}" "${theirs_f32[*]:-}" <<'PY'
import statistics, sys, torch
arch, dataset, mode, k, batch, threads, device, layout, flops, ours, theirs, theirs_cl, theirs_f32 = sys.argv[1:]
med = lambda s: statistics.median(map(float, s.split()))
o, t = med(ours), med(theirs)
where = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu, {threads} thread(s)"
peer = "eager" + (" under autocast(bfloat16)" if layout.endswith("bf16") else "")
line = (f"{arch} {dataset} {mode} (attack steps {k}, batch {batch}, {where}): advlens ({layout}) {o:.1f} ms/step "
        f"({float(flops) / o / 1e9:.2f} model TFLOP/s), "
        f"PyTorch {torch.__version__} {peer} {t:.1f} ms/step, ratio advlens/PyTorch = {o/t:.2f}")
if theirs_cl.strip():
    c = med(theirs_cl)
    line += f"; PyTorch channels_last {c:.1f} ms/step, ratio = {o/c:.2f}"
if theirs_f32.strip():
    f = med(theirs_f32)
    line += f"; PyTorch eager f32 (contiguous) {f:.1f} ms/step, ratio = {o/f:.2f}"
print(line)
PY
