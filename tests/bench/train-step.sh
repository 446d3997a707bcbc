#!/usr/bin/env bash
# The same training step in advlens (libtorch through tch) and in PyTorch eager, in one run,
# alternating rounds so that machine noise hits both; prints both medians and the ratio.
#   tests/bench/train-step.sh [ARCH] [DATASET] [MODE] [ATTACK_STEPS] [BATCH]
# defaults: small-cnn mnist consistent 10 64. Env: ROUNDS (3), STEPS (20), THREADS (1),
# DEVICE (cpu; cuda on a GPU machine), FORMAT (advlens's --memory-format: auto, contiguous or
# channels-last; auto is channels-last on a CPU), PEER_CHANNELS_LAST (1: also time PyTorch with
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
format="${FORMAT:-auto}"; peer_cl="${PEER_CHANNELS_LAST:-1}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
case "$dataset" in cifar10) eps=0.0313725; step=0.0078431;; fashion-mnist) eps=0.1; step=0.01;; *) eps=0.3; step=0.01;; esac
common=(--batch-size "$batch" --steps "$steps" --threads "$threads" --device "$device" --attack-steps "$k" --epsilon "$eps" --step-size "$step")
median_ms() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["median_ms"])' "$1"; }
ours=(); theirs=(); theirs_cl=(); layout=""
for r in $(seq "$rounds"); do
    line=$("$ADVLENS_BIN" bench-step --arch "$arch" --dataset "$dataset" --mode "$mode" --attack pgd --memory-format "$format" "${common[@]}" --write-spec "$tmp/model.json" 2>"$tmp/err") || { cat "$tmp/err" >&2; exit 1; }
    ours+=("$(median_ms "$line")")
    layout=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["memory_format"])' "$line")
    layer=$(python3 -c 'import sys; a=sys.argv[1]; print({"alexnet":"relu5","vgg":"relu6","resnet":"block3_out"}.get(a,"relu2"))' "$arch")
    theirs+=("$(median_ms "$(python3 tests/bench/train_step.py "$tmp/model.json" --mode "$mode" --feature-layer "$layer" "${common[@]}")")")
    if [ "$peer_cl" = 1 ]; then
        theirs_cl+=("$(median_ms "$(python3 tests/bench/train_step.py "$tmp/model.json" --mode "$mode" --feature-layer "$layer" --channels-last "${common[@]}")")")
    fi
done
python3 - "$arch" "$dataset" "$mode" "$k" "$batch" "$threads" "$device" "$layout" "${ours[*]}" "${theirs[*]}" "${theirs_cl[*]:-}" <<'PY'
import statistics, sys, torch
arch, dataset, mode, k, batch, threads, device, layout, ours, theirs, theirs_cl = sys.argv[1:]
med = lambda s: statistics.median(map(float, s.split()))
o, t = med(ours), med(theirs)
where = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu, {threads} thread(s)"
line = (f"{arch} {dataset} {mode} (attack steps {k}, batch {batch}, {where}): advlens ({layout}) {o:.1f} ms/step, "
        f"PyTorch {torch.__version__} eager {t:.1f} ms/step, ratio advlens/PyTorch = {o/t:.2f}")
if theirs_cl.strip():
    c = med(theirs_cl)
    line += f"; PyTorch channels_last {c:.1f} ms/step, ratio = {o/c:.2f}"
print(line)
PY
