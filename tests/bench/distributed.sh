#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same training (MNIST, one epoch of --limit images,
# global batch 64) as 1 process x 1 thread, 1 process x 2 threads, and 2 ranks x 1 thread
# launched by torchrun (Gloo on loopback). Prints images/s (from the run's metrics.jsonl) and the
# 2-rank scaling efficiency against each 1-process row. Run it on an idle machine.
#   tests/bench/distributed.sh [ARCH] [MODE] [LIMIT]   (defaults: small-cnn standard 12000)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
torch_env
arch="${1:-small-cnn}"; mode="${2:-standard}"; limit="${3:-12000}"
data="${ADVLENS_DATASETS:-$PWD/../shared/datasets}/mnist"
[ -d "$data" ] || die "no MNIST at $data (set ADVLENS_DATASETS)"
stage "building advlens (release)"
cargo build --release -j2 -p advlens-trainer >&2
bin="$PWD/target/release/advlens"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(train --data "$data" --arch "$arch" --mode "$mode" --epochs 1 --limit "$limit" --batch-size 64
        --val-fraction 0 --checkpoint-every 0 --device cpu --quiet)
rate() { python3 -c "import json,sys; print(round(json.loads(open(sys.argv[1]).readlines()[-1])['images_per_second'], 1))" "$1/metrics.jsonl"; }

stage "1 process x 1 thread"
"$bin" "${common[@]}" --threads 1 --out "$out/p1t1" >/dev/null
stage "1 process x 2 threads"
"$bin" "${common[@]}" --threads 2 --out "$out/p1t2" >/dev/null
stage "2 ranks x 1 thread (torchrun, Gloo)"
torchrun --nproc-per-node 2 --master-addr 127.0.0.1 --master-port "$((20000 + RANDOM % 20000))" \
    --no-python "$bin" "${common[@]}" --threads 1 --out "$out/r2t1" --distributed >/dev/null 2>"$out/torchrun.log" \
    || { cat "$out/torchrun.log" >&2; die "the 2-rank run failed"; }

a=$(rate "$out/p1t1"); b=$(rate "$out/p1t2"); c=$(rate "$out/r2t1")
printf '\n%s, %s, %s images, batch 64, %s\n' "$arch" "$mode" "$limit" "$(nproc) cores"
printf '| setup | images/s | 2 ranks / this |\n|---|---|---|\n'
printf '| 1 process x 1 thread | %s | %s |\n' "$a" "$(python3 -c "print(f'{$c/$a:.2f}x')")"
printf '| 1 process x 2 threads | %s | %s |\n' "$b" "$(python3 -c "print(f'{$c/$b:.2f}x')")"
printf '| 2 ranks x 1 thread (Gloo) | %s | 1.00x |\n' "$c"
printf 'scaling efficiency of 2 ranks over 1 process x 1 thread: %s\n' "$(python3 -c "print(f'{$c/$a/2:.0%}')")"
