#!/usr/bin/env bash
# Adds a neuron atlas for every convolutional layer to a model bundle, for `advlens trace` and
# the explorer:
#   scripts/make-atlas.sh BUNDLE_DIR [DATA_DIR] [LAYER...]
#     DATA_DIR  default: $ADVLENS_DATA or ../shared/datasets/mnist
#     LAYER     default: every ReLU before the classifier (those that output feature maps)
# The adversarial images are the paper's targeted ensemble attack with this one model as the
# ensemble (Adam, random targets, the dataset's default epsilon box) on 1,000 test images; each
# layer's atlas is `advlens analyze --atlas --top-k 10` on 2,000 test images, written to
# BUNDLE_DIR/atlas/<layer>/. About a minute per layer on one CPU thread. Then list the layers
# under "atlas" for the model in web/assets/models/index.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bundle="${1:?usage: scripts/make-atlas.sh BUNDLE_DIR [DATA_DIR] [LAYER...]}"
data="${2:-${ADVLENS_DATA:-$PWD/../shared/datasets/mnist}}"
shift $(( $# < 2 ? $# : 2 ))
[ -f "$bundle/model.json" ] || die "$bundle is not a model bundle (no model.json)"
[ -d "$data" ] || die "no dataset folder at $data: pass the one the model was trained on"
layers=("$@")
if [ ${#layers[@]} -eq 0 ]; then
    mapfile -t layers < <(python3 - "$bundle/model.json" <<'PY'
import json, sys
nodes = json.load(open(sys.argv[1]))["nodes"]
for n in nodes:
    if n["op"] in ("flatten", "global_avg_pool", "linear"):
        break
    if n["op"] == "relu":
        print(n["name"])
PY
)
fi
[ ${#layers[@]} -gt 0 ] || die "no convolutional ReLU layer in $bundle/model.json"
torch_env
cargo build --release -p advlens-trainer
bin=target/release/advlens
work="runs/atlas/$(basename "$bundle")"
rm -rf "$work"
"$bin" attack --models "$bundle" --data "$data" --limit 1000 --steps 50 --seed 0 --threads 1 --out "$work/adversarial"
rm -rf "$bundle/atlas"
for layer in "${layers[@]}"; do
    stage "atlas of $layer"
    "$bin" analyze --model "$bundle" --adv "$work/adversarial" --data "$data" --limit 2000 --top-k 10 --layer "$layer" --atlas --threads 1 --out "$work/analysis-$layer"
    mkdir -p "$bundle/atlas"
    cp -r "$work/analysis-$layer/atlas" "$bundle/atlas/$layer"
done
du -sh "$bundle/atlas"
printf 'atlas layers: %s\n' "$(printf '"%s", ' "${layers[@]}" | sed 's/, $//')" >&2
