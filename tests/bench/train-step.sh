#!/usr/bin/env bash
# The same training step in advlens (libtorch through tch) and in PyTorch eager, in one run,
# alternating rounds so that machine noise hits both; prints both medians and the ratio.
#   tests/bench/train-step.sh [ARCH] [DATASET] [MODE] [ATTACK_STEPS] [BATCH]
# defaults: small-cnn mnist consistent 10 64. Env: ROUNDS (3), STEPS (20), THREADS (1),
# DEVICE (cpu; cuda on a GPU machine), ADVLENS_BIN (a prebuilt advlens: no cargo build, no
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
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
case "$dataset" in cifar10) eps=0.0313725; step=0.0078431;; fashion-mnist) eps=0.1; step=0.01;; *) eps=0.3; step=0.01;; esac
common=(--batch-size "$batch" --steps "$steps" --threads "$threads" --device "$device" --attack-steps "$k" --epsilon "$eps" --step-size "$step")
ours=(); theirs=()
for r in $(seq "$rounds"); do
    line=$("$ADVLENS_BIN" bench-step --arch "$arch" --dataset "$dataset" --mode "$mode" --attack pgd "${common[@]}" --write-spec "$tmp/model.json" 2>"$tmp/err") || { cat "$tmp/err" >&2; exit 1; }
    ours+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["median_ms"])' "$line")")
    layer=$(python3 -c 'import sys; a=sys.argv[1]; print({"alexnet":"relu5","vgg":"relu6","resnet":"block3_out"}.get(a,"relu2"))' "$arch")
    line=$(python3 tests/bench/train_step.py "$tmp/model.json" --mode "$mode" --feature-layer "$layer" "${common[@]}")
    theirs+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["median_ms"])' "$line")")
done
python3 - "$arch" "$dataset" "$mode" "$k" "$batch" "$threads" "$device" "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys, torch
arch, dataset, mode, k, batch, threads, device, ours, theirs = sys.argv[1:]
o = statistics.median(map(float, ours.split())); t = statistics.median(map(float, theirs.split()))
where = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu, {threads} thread(s)"
print(f"{arch} {dataset} {mode} (attack steps {k}, batch {batch}, {where}): "
      f"advlens {o:.1f} ms/step, PyTorch {torch.__version__} eager {t:.1f} ms/step, ratio advlens/PyTorch = {o/t:.2f}")
PY
