#!/usr/bin/env bash
# An ImageNet-size imported model on the shared engines, with its peers measured in the same run:
#   1. exports torchvision's resnet18 (random weights, 224 px, 1000 classes) to ONNX and imports it;
#   2. criterion (tests/benches/imagenet.rs): one image, forward and forward + input gradient,
#      advlens CPU and WebGPU (native adapter: lavapipe here) beside libtorch, 1 thread;
#   3. onnxruntime (CPU, 1 thread) on the same .onnx file, forward, and forward + input gradient
#      on its gradient graph (tests/bench/grad_graph.py), median of 20;
#   4. peak memory and time of `advlens trace` (all 512 channels of the last block) on one image.
#   tests/bench/imagenet224.sh [MODEL]   (default resnet18; any torchvision classifier name)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
torch_env
model="${1:-resnet18}"
out=target/bench224
mkdir -p "$out"
if [ ! -f "$out/$model-224-torchscript.onnx" ]; then
    stage "exporting $model at 224 px"
    python3 tests/onnx/export_models.py "$out" --imagenet "$model" 2>&1 | grep -v Warning >&2 || true
fi
stage "building advlens (release)"
cargo build --release -j2 -p advlens-trainer >&2
bin=target/release/advlens
rm -rf "$out/$model"
"$bin" import "$out/$model-224-torchscript.onnx" --out "$out/$model" --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --quiet

stage "criterion: advlens CPU and WebGPU vs libtorch (1 thread)"
ADVLENS_BENCH_MODEL="$PWD/$out/$model" cargo bench -j2 -p advlens-tests --bench imagenet 2>&1 | grep -E "time:|^[a-z0-9_]+-224px/|adapter" >&2

stage "onnxruntime CPU, 1 thread, same file"
python3 - "$out/$model-224-torchscript.onnx" <<'PY' >&2
import statistics, sys, time
import numpy as np, onnx, onnxruntime as ort
sys.path.insert(0, "tests/bench")
from grad_graph import build_grad_model
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
g = ort.InferenceSession(build_grad_model(onnx.load(sys.argv[1])).SerializeToString(), opts, providers=["CPUExecutionProvider"])
x = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
name = s.get_inputs()[0].name
k = s.get_outputs()[0].shape[1]
grad_feeds = {name: x, "onehot": np.eye(k, dtype=np.float32)[:1], "x0": x, "eps": np.array(0, np.float32), "alpha": np.array(0, np.float32)}
for what, run in [("forward", lambda: s.run(None, {name: x})), ("forward + input gradient", lambda: g.run(["loss", "grad"], grad_feeds))]:
    run()
    times = []
    for _ in range(20):
        t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    print(f"onnxruntime {ort.__version__} {what} b1: median {1e3 * statistics.median(times):.1f} ms")
PY

stage "advlens trace: time and peak memory"
python3 -c 'import sys, numpy as np; from PIL import Image; Image.fromarray((np.random.default_rng(2).random((256, 256, 3)) * 255).astype("uint8")).save(sys.argv[1])' "$out/noise.png"
/usr/bin/time -f "trace: %e s wall, peak resident %M KB" "$bin" trace --model "$out/$model" --image "$out/noise.png" --top 5 --quiet >/dev/null
