#!/usr/bin/env bash
# `advlens analyze` on an imported ImageNet-size model: throughput in images per second over a
# folder in ImageNet's layout (`val/<wnid>/*.jpg`), issue 15's measurement.
#   1. exports torchvision's resnet18 (random weights, 224 px, 1000 classes) and imports it with
#      1000 WordNet-style class names, ten of them CIFAR-10's classes' synsets;
#   2. writes N photos (default 1000) into val/<wnid>/: CIFAR-10 test images (../shared/datasets),
#      which the loader scales to 224 px as it would any photo;
#   3. times `advlens attack` (FGSM, one step: the adversarial set analyze needs), then
#      `advlens analyze` (top-20 over the N real and N adversarial images, tracing included).
#   tests/bench/analyze224.sh [N]     env: THREADS (1)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
torch_env
n="${1:-1000}"
threads="${THREADS:-1}"
out=target/bench224
mkdir -p "$out"
if [ ! -f "$out/resnet18-224-torchscript.onnx" ]; then
    stage "exporting resnet18 at 224 px"
    python3 tests/onnx/export_models.py "$out" --imagenet resnet18 2>&1 | grep -v Warning >&2 || true
fi
stage "building advlens (release)"
cargo build --release -j2 -p advlens-trainer >&2
bin=target/release/advlens

stage "$n photos in ImageNet's layout, a resnet18 whose classes are synsets"
python3 - "$out" "$n" "${ADVLENS_DATASETS:-../shared/datasets}/cifar10-jpg.tar.gz" <<'PY' >&2
import io, os, shutil, sys, tarfile
out, n, archive = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# CIFAR-10's classes as WordNet synsets (the same ids as trainer/assets/hierarchy), then fillers.
cifar = {"airplane": "n02691156", "automobile": "n02958343", "bird": "n01503061", "cat": "n02121808",
         "deer": "n02430045", "dog": "n02084071", "frog": "n01639765", "horse": "n02374451",
         "ship": "n04194289", "truck": "n04490091"}
wnids = list(cifar.values()) + [f"n9{k:07d}" for k in range(1000 - len(cifar))]
open(f"{out}/synsets.txt", "w").write("\n".join(wnids) + "\n")
val = f"{out}/imagenet/val"
shutil.rmtree(f"{out}/imagenet", ignore_errors=True)
taken = {}
with tarfile.open(archive) as tar:
    for m in tar:
        parts = m.name.split("/")
        if not m.isfile() or "test" not in parts or parts[-2] not in cifar or sum(taken.values()) >= n:
            continue
        cls = parts[-2]
        if taken.get(cls, 0) >= (n + len(cifar) - 1) // len(cifar):
            continue
        os.makedirs(f"{val}/{cifar[cls]}", exist_ok=True)
        with open(f"{val}/{cifar[cls]}/{os.path.basename(m.name)}", "wb") as f:
            f.write(tar.extractfile(m).read())
        taken[cls] = taken.get(cls, 0) + 1
print(f"{sum(taken.values())} photos in {len(taken)} class folders")
PY
rm -rf "$out/resnet18-synsets"
"$bin" import "$out/resnet18-224-torchscript.onnx" --out "$out/resnet18-synsets" --classes "$out/synsets.txt" \
    --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --dataset folder --quiet >&2

stage "attack: FGSM, one step, $n images ($threads thread(s))"
rm -rf "$out/adv"
/usr/bin/time -f "attack: %e s wall, peak resident %M KB" "$bin" attack --models "$out/resnet18-synsets" --data "$out/imagenet" \
    --limit "$n" --attack fgsm --target none --epsilon 0.0157 --device cpu --threads "$threads" --out "$out/adv" --quiet
stage "analyze: top-20 over $n real + $n adversarial images ($threads thread(s))"
rm -rf "$out/analysis"
start=$(date +%s.%N)
/usr/bin/time -f "analyze: %e s wall, peak resident %M KB" "$bin" analyze --model "$out/resnet18-synsets" --adv "$out/adv" \
    --data "$out/imagenet" --limit "$n" --device cpu --threads "$threads" --out "$out/analysis" --quiet
python3 -c "import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print(f'analyze: {2 * int(sys.argv[3])} images in {s:.1f} s = {2 * int(sys.argv[3]) / s:.2f} images/s')" \
    "$start" "$(date +%s.%N)" "$n"
