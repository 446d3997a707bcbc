"""Writes a bundle folder as an ONNX file through PyTorch: the graph built by
tests/bench/train_step.py's Graph (normalisation inside), the bundle's weights loaded into it,
exported by the TorchScript exporter. Used to make tests/e2e/fixtures/*.onnx, the explorer's
"open an ONNX file" case, whose predictions must equal the bundle's.

    python tests/onnx/bundle_to_onnx.py BUNDLE_DIR OUT.onnx
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from train_step import Graph  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        values = torch.frombuffer(bytearray(data[8 + n + start:8 + n + end]), dtype=torch.float32)
        out[name] = values.view(info["shape"])
    return out


def main():
    bundle, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(bundle, "model.json")) as f:
        spec = json.load(f)
    graph = Graph(spec)
    weights = read_safetensors(os.path.join(bundle, "weights.safetensors"))
    state = {f"layers.{k}": v for k, v in weights.items()}
    missing, unexpected = graph.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith(("mean", "std", "num_batches_tracked")) for k in missing):
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    inp = spec["input"]
    x = torch.rand(1, inp["channels"], inp["height"], inp["width"])
    torch.onnx.export(graph.eval(), (x,), out, dynamo=False, opset_version=17, input_names=["image"], output_names=["logits"])
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
