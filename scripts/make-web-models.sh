#!/usr/bin/env bash
# Reproduces the models the explorer ships (web/assets/models/<id>/) from the datasets, each with
# 16 sample images and a neuron atlas for every convolutional layer:
#   scripts/make-web-models.sh [ID...]        (default: every ID below)
#     mnist-small          scripts/make-default-model.sh (2 epochs, standard training)
#     mnist-pgd            the `mnist-pgd` run of scripts/experiments.sh quick (PGD training, eps 0.3)
#     fashion-standard     the `fashion-standard` run (standard training)
#     fashion-consistent   the `fashion-consistent` run (the paper's consistent loss, eps 0.1)
#     concepts-standard    the `concepts-standard` run (the concept world, 32x32; atlases with concept IoU)
#     concepts-consistent  the `concepts-consistent` run (consistent loss, eps 8/255)
#     cifar10-standard     the `cifar10-resnet-standard` run (ResNet-8, 24 epochs, cosine)
#     cifar10-consistent   the `cifar10-resnet-consistent` run (consistent loss, eps 8/255, 10 epochs)
# Training runs are reused when runs/experiments/quick/<name>/eval.json exists. One CPU thread
# each; about 25 minutes for the four MNIST / Fashion-MNIST ones on the 2-core machine, 35 for the
# two concept-world ones, and for the CIFAR-10 pair about 40 (standard) and 90 (consistent)
# minutes of training side by side on one CPU thread each (training picks CUDA when present). List
# each model in web/assets/models/index.json with its dataset and the atlas layers this prints.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
datasets="${ADVLENS_DATASETS:-$PWD/../shared/datasets}"
ids=("$@")
[ ${#ids[@]} -gt 0 ] || ids=(mnist-small mnist-pgd fashion-standard fashion-consistent)
for id in "${ids[@]}"; do
    stage "model $id"
    case "$id" in
        mnist-small) scripts/make-default-model.sh "$datasets/mnist"; continue ;;
        mnist-pgd) run=mnist-pgd; data="$datasets/mnist" ;;
        fashion-standard|fashion-consistent) run="$id"; data="$datasets/fashion-mnist" ;;
        concepts-standard|concepts-consistent) run="$id"; data="runs/data/concepts-32" ;;  # written by experiments.sh
        cifar10-standard|cifar10-consistent) run="cifar10-resnet-${id#cifar10-}"; data="runs/data/cifar10" ;;  # extracted by experiments.sh
        *) die "unknown model id $id (known: mnist-small mnist-pgd fashion-standard fashion-consistent concepts-standard concepts-consistent cifar10-standard cifar10-consistent)" ;;
    esac
    scripts/experiments.sh quick "$run"
    torch_env
    target/release/advlens export --run "runs/experiments/quick/$run" --data "$data" --samples 16 --out "web/assets/models/$id"
    scripts/make-atlas.sh "web/assets/models/$id" "$data"
    du -sh "web/assets/models/$id"
done
