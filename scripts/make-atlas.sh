#!/usr/bin/env bash
# Adds a neuron atlas to a model bundle, for `advlens trace` and the explorer's inspector:
#   scripts/make-atlas.sh BUNDLE_DIR [DATA_DIR]    (default data: $ADVLENS_DATA or ../shared/datasets/mnist)
# The adversarial images are the paper's targeted ensemble attack with this one model as the
# ensemble (Adam, random targets, the dataset's default epsilon box) on 1,000 test images; the
# atlas is `advlens analyze --atlas --top-k 10` of the traced layer on 2,000 test images. About a
# minute on one CPU thread. Then set `"atlas": true` for the model in web/assets/models/index.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bundle="${1:?usage: scripts/make-atlas.sh BUNDLE_DIR [DATA_DIR]}"
data="${2:-${ADVLENS_DATA:-$PWD/../shared/datasets/mnist}}"
[ -f "$bundle/model.json" ] || die "$bundle is not a model bundle (no model.json)"
[ -d "$data" ] || die "no dataset folder at $data: pass the one the model was trained on"
torch_env
cargo build --release -p advlens-trainer
bin=target/release/advlens
work="runs/atlas/$(basename "$bundle")"
rm -rf "$work"
"$bin" attack --models "$bundle" --data "$data" --limit 1000 --steps 50 --seed 0 --threads 1 --out "$work/adversarial"
"$bin" analyze --model "$bundle" --adv "$work/adversarial" --data "$data" --limit 2000 --top-k 10 --atlas --threads 1 --out "$work/analysis"
rm -rf "$bundle/atlas"
cp -r "$work/analysis/atlas" "$bundle/atlas"
du -sh "$bundle/atlas"
