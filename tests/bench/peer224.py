"""Adds an ImageNet-size model to the browser peer harness (../shared/bench/peers), forward only.

    python tests/bench/peer224.py ONNX BUNDLE_DIR HARNESS_DIR NAME

Writes HARNESS_DIR/models/NAME.{json,onnx,grad.onnx,weights.bin,x64.bin,y64.bin,grad1.bin,pgd1.bin}
and NAME.model.json / NAME.weights.safetensors (the advlens bundle of the same file, imported
without normalisation so that every engine gets the same input tensor). The reference logits
come from onnxruntime (CPU, Python) on one seeded input. There is no gradient reference (the
harness is run with grad=0): onnxruntime-web has no input gradients, and the harness's hand-written
backward graphs exist for its own small nets only. grad.onnx is a copy of the model so that the
onnxruntime adapter, which always opens one, starts.
"""
import json
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort

onnx_path, bundle, harness, name = sys.argv[1:5]
models = f"{harness}/models"
# The harness's adapters feed `input` and read `logits`: rename the graph's ends to those.
model = onnx.load(onnx_path)
for value, want in [(model.graph.input[0], "input"), (model.graph.output[0], "logits")]:
    old = value.name
    for node in model.graph.node:
        node.input[:] = [want if i == old else i for i in node.input]
        node.output[:] = [want if o == old else o for o in node.output]
    value.name = want
onnx_path = f"{models}/{name}.onnx"
onnx.save(model, onnx_path)
sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
c, h, w = inp.shape[1:]
x = np.random.default_rng(7).standard_normal((1, c, h, w), dtype=np.float32)
logits = sess.run(None, {inp.name: x})[0].astype(np.float32)
k = logits.shape[1]
manifest = {"name": name, "input_shape": [c, h, w], "classes": k, "labels": [int(logits.argmax())],
            "ref": {"loss1": 0.0, "pgd_loss": 0.0}, "pgd": {"eps": 0.0, "alpha": 0.0, "steps": 0}, "bundle": True}
json.dump(manifest, open(f"{models}/{name}.json", "w"))
shutil.copy(onnx_path, f"{models}/{name}.grad.onnx")
x.tofile(f"{models}/{name}.x64.bin")
logits.tofile(f"{models}/{name}.y64.bin")
for empty in ["weights", "grad1", "pgd1"]:
    open(f"{models}/{name}.{empty}.bin", "wb").close()
shutil.copy(f"{bundle}/model.json", f"{models}/{name}.model.json")
shutil.copy(f"{bundle}/weights.safetensors", f"{models}/{name}.weights.safetensors")
print(f"{name}: {c}x{h}x{w}, {k} classes, reference logits from onnxruntime {ort.__version__}")
