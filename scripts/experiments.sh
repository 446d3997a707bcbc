#!/usr/bin/env bash
# Trains and evaluates the models whose numbers are in docs/experiments.md.
#   scripts/experiments.sh quick [NAME...]   CPU-sized presets (this 2-core machine: ~75 min in all)
#   scripts/experiments.sh full  [NAME...]   GPU-sized presets (longer training, stronger attacks)
# Each experiment writes runs/experiments/<preset>/<NAME>/ (run dir, eval.json, train.log) and
# prints the commands it ran. Datasets: $ADVLENS_DATASETS (default ../shared/datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
torch_env
preset="${1:-quick}"; shift || true
datasets="${ADVLENS_DATASETS:-$(cd .. && pwd)/shared/datasets}"
out="runs/experiments/$preset"
mkdir -p "$out"
cargo build --release -p advlens-trainer -j2 >&2
bin=target/release/advlens
threads="${ADVLENS_THREADS:-1}"

cifar_dir() {
    local dir="runs/data/cifar10"
    if [ ! -d "$dir/test" ]; then
        mkdir -p "$dir" && tar xzf "$datasets/cifar10-jpg.tar.gz" -C "$dir"
    fi
    echo "$dir"
}

concepts_dir() {
    local dir="runs/data/concepts-32"
    if [ ! -f "$dir/vocab.json" ]; then
        $bin data concepts --quiet --train 20000 --test 2000 --seed 0 --out "$dir" >&2
    fi
    echo "$dir"
}

# experiment NAME DATASET DATA_DIR EVAL_ARGS -- TRAIN_ARGS...
experiment() {
    local name="$1" dataset="$2" data="$3" eval_args="$4"; shift 5
    local dir="$out/$name"
    if [ -f "$dir/eval.json" ]; then echo "== $name: done already ($dir)"; return; fi
    rm -rf "$dir"
    echo "== $name"
    local start=$SECONDS
    ( set -x; $bin train --dataset "$dataset" --data "$data" --threads "$threads" --out "$dir" "$@" ) 2> >(tee "$out/$name.train.log" >&2)
    local train_s=$((SECONDS - start))
    ( set -x; $bin eval --run "$dir" --data "$data" --threads "$threads" $eval_args ) | tee "$out/$name.eval.txt"
    echo "{\"name\":\"$name\",\"train_seconds\":$train_s,\"eval_seconds\":$((SECONDS - start - train_s))}" >> "$out/timings.jsonl"
}

want() { [ "$#" -eq 0 ] || [[ " $* " == *" $name "* ]]; }

mnist="$datasets/mnist"; fashion="$datasets/fashion-mnist"
if [ "$preset" = quick ]; then
    E=3; ev="--limit 1000"
    run() { name="$1"; want "${selected[@]}" && experiment "$@" || true; }
    selected=("$@")
    run mnist-standard mnist "$mnist" "$ev --attacks fgsm,pgd20 --epsilon 0.3" -- --arch small-cnn --width 32 --epochs 6 --mode standard
    run mnist-pgd mnist "$mnist" "$ev --attacks fgsm,pgd20,pgd100 --restarts 5" -- --arch small-cnn --width 16 --epochs $E --mode pgd --attack-steps 10 --step-size 0.03
    run fashion-standard fashion-mnist "$fashion" "$ev --attacks fgsm,pgd20,pgd100 --epsilon 0.1" -- --arch small-cnn --epochs $E --mode standard
    run fashion-pgd fashion-mnist "$fashion" "$ev --attacks fgsm,pgd20,pgd100" -- --arch small-cnn --epochs $E --mode pgd --attack-steps 7 --step-size 0.025
    run fashion-trades fashion-mnist "$fashion" "$ev --attacks fgsm,pgd20,pgd100" -- --arch small-cnn --epochs $E --mode trades --attack-steps 7 --step-size 0.025
    run fashion-consistent fashion-mnist "$fashion" "$ev --attacks fgsm,pgd20,pgd100" -- --arch small-cnn --epochs $E --mode consistent --attack pgd --attack-steps 7 --step-size 0.025
    run cifar10-standard cifar10 "$(cifar_dir)" "$ev --attacks fgsm,pgd20" -- --arch resnet --epochs 6 --mode standard
    # The explorer's CIFAR-10 pair (scripts/make-web-models.sh): longer, cosine-decayed runs that
    # still fit a CPU afternoon (one thread each, run side by side). The consistent one uses a
    # 3-step PGD (3/255 steps reach the 8/255 ball) and a one-epoch epsilon warm-up.
    run cifar10-resnet-standard cifar10 "$(cifar_dir)" "$ev --attacks fgsm,pgd20" -- --arch resnet --epochs 24 --batch-size 128 --lr 2e-3 --lr-schedule cosine --mode standard
    run cifar10-resnet-consistent cifar10 "$(cifar_dir)" "$ev --attacks fgsm,pgd20" -- --arch resnet --epochs 10 --batch-size 128 --lr 2e-3 --lr-schedule cosine --mode consistent --attack pgd --attack-steps 3 --step-size 0.0117647 --epsilon-warmup 1
    run mnist-vgg mnist "$mnist" "$ev --attacks fgsm,pgd20 --epsilon 0.3" -- --arch vgg --width 16 --epochs 3 --mode standard
    run mnist-vgg-cosine mnist "$mnist" "$ev --attacks fgsm,pgd20 --epsilon 0.3" -- --arch vgg --width 16 --epochs 3 --lr 2e-3 --lr-schedule cosine --mode standard
    run concepts-standard folder "$(concepts_dir)" "$ev --attacks fgsm,pgd20 --epsilon 0.0313725" -- --arch small-cnn --width 32 --epochs 8 --mode standard
    run concepts-consistent folder "$(concepts_dir)" "$ev --attacks fgsm,pgd20 --epsilon 0.0313725" -- --arch small-cnn --width 32 --epochs 8 --mode consistent --attack pgd --attack-steps 7
else
    ev="--restarts 10"
    run() { name="$1"; want "${selected[@]}" && experiment "$@" || true; }
    selected=("$@")
    run mnist-standard mnist "$mnist" "$ev --attacks fgsm,pgd20 --epsilon 0.3" -- --arch vgg --width 32 --epochs 15
    run mnist-pgd mnist "$mnist" "--restarts 50 --attacks fgsm,pgd20,pgd100" -- --arch vgg --width 32 --epochs 40 --mode pgd
    for m in standard pgd trades consistent; do
        run fashion-$m fashion-mnist "$fashion" "$ev --attacks fgsm,pgd20,pgd100 --epsilon 0.1" -- --arch vgg --width 32 --epochs 30 --mode $m
    done
    run cifar10-standard cifar10 "$(cifar_dir)" "$ev --attacks fgsm,pgd20" -- --arch resnet --width 32 --epochs 60
fi
