"""Adds an ImageNet-size model to the browser peer harness (../shared/bench/peers).

    python tests/bench/peer224.py ONNX BUNDLE_DIR HARNESS_DIR NAME [PGD_STEPS]

Writes HARNESS_DIR/models/NAME.{json,onnx,grad.onnx,weights.bin,x64.bin,y64.bin,grad1.bin,pgd1.bin}
and NAME.model.json / NAME.weights.safetensors (the advlens bundle of the same file, imported
without normalisation so that every engine gets the same input tensor), and the same model as
NAME-1step with a one-step PGD (the software WebGPU adapters take minutes per PGD-20 at 224 px).

NAME.grad.onnx is the model's input gradient written as a plain ONNX graph
(tests/bench/grad_graph.py; NAME-1step's writes its max-pool backward without MaxPool's Indices
output, which onnxruntime-web's WebGPU EP lacks), which is how onnxruntime-web, an inference runtime, gets timed on
forward + input gradient and PGD. References come from onnxruntime (CPU, Python) on a seeded
image: the logits from the model, the loss, gradient and PGD from the gradient graph. The
gradient graph is checked here first: its loss against the cross-entropy of the model's own
logits, its gradient against central finite differences of that loss along random directions.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
from grad_graph import build_grad_model  # noqa: E402

onnx_path, bundle, harness, name = sys.argv[1:5]
pgd_steps = int(sys.argv[5]) if len(sys.argv) > 5 else 20
eps, alpha = 8 / 255, 2 / 255
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
grad_path = f"{models}/{name}.grad.onnx"
onnx.save(build_grad_model(model), grad_path)
# The WebGPU configurations run NAME-1step, whose gradient graph needs no MaxPool Indices.
masks_path = f"{models}/{name}-1step.grad.onnx"
onnx.save(build_grad_model(model, maxpool="masks"), masks_path)

sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
gsess = ort.InferenceSession(grad_path, providers=["CPUExecutionProvider"])
c, h, w = sess.get_inputs()[0].shape[1:]
# Pixels in [0, 1]: PGD's projection clips to that range.
x = np.random.default_rng(7).random((1, c, h, w), dtype=np.float32)
logits = sess.run(None, {"input": x})[0].astype(np.float32)
k = logits.shape[1]
label = int(logits.argmax())
onehot = np.zeros((1, k), np.float32)
onehot[0, label] = 1


def loss_of(image):
    z = sess.run(None, {"input": image})[0].astype(np.float64)[0]
    return float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[label])


def run_grad(image, x0):
    feeds = {"input": image, "onehot": onehot, "x0": x0, "eps": np.array(eps, np.float32), "alpha": np.array(alpha, np.float32)}
    return gsess.run(["loss", "grad", "x_next"], feeds)


loss1, grad1, _ = run_grad(x, x)
masks = ort.InferenceSession(masks_path, providers=["CPUExecutionProvider"])
grad_masks = masks.run(["grad"], {"input": x, "onehot": onehot, "x0": x, "eps": np.array(eps, np.float32), "alpha": np.array(alpha, np.float32)})[0]
assert np.abs(grad_masks - grad1).max() <= 1e-6 * max(1e-3, np.abs(grad1).max()) + 1e-9, "the two max-pool backwards disagree"
assert abs(loss1 - loss_of(x)) <= 1e-4 * max(1.0, abs(loss1)), f"gradient graph loss {loss1} != {loss_of(x)}"
# Along the gradient (the derivative is |grad|) and along the three pixels of largest gradient
# (the derivative is that pixel's entry): random directions see only ~|grad| / sqrt(pixels),
# below float32's resolution of the loss.
flat = grad1.reshape(-1).astype(np.float64)
directions = [(grad1 / np.linalg.norm(grad1), 1e-2)]
for i in np.argsort(-np.abs(flat))[:3]:
    v = np.zeros(flat.size, np.float32)
    v[i] = 1
    directions.append((v.reshape(x.shape), 1e-2))
for trial, (v, step) in enumerate(directions):
    fd = (loss_of(x + step * v) - loss_of(x - step * v)) / (2 * step)
    exact = float((grad1.astype(np.float64) * v).sum())
    assert abs(fd - exact) <= 3e-2 * abs(exact), f"direction {trial}: finite difference {fd}, gradient graph {exact}"
    print(f"  direction {trial}: d loss = {exact:.6g} (central difference {fd:.6g})", file=sys.stderr)


def pgd(steps):
    adv = x
    for _ in range(steps):
        adv = run_grad(adv, x)[2]
    return adv, float(run_grad(adv, x)[0])


def write(as_name, steps):
    adv, adv_loss = pgd(steps)
    manifest = {"name": as_name, "input_shape": [c, h, w], "classes": k, "labels": [label],
                "ref": {"loss1": float(loss1), "pgd_loss": adv_loss}, "pgd": {"eps": eps, "alpha": alpha, "steps": steps}, "bundle": True}
    json.dump(manifest, open(f"{models}/{as_name}.json", "w"))
    x.tofile(f"{models}/{as_name}.x64.bin")
    logits.tofile(f"{models}/{as_name}.y64.bin")
    grad1.astype(np.float32).tofile(f"{models}/{as_name}.grad1.bin")
    adv.astype(np.float32).tofile(f"{models}/{as_name}.pgd1.bin")
    open(f"{models}/{as_name}.weights.bin", "wb").close()
    if as_name != name:
        shutil.copy(f"{models}/{name}.onnx", f"{models}/{as_name}.onnx")
    shutil.copy(f"{bundle}/model.json", f"{models}/{as_name}.model.json")
    shutil.copy(f"{bundle}/weights.safetensors", f"{models}/{as_name}.weights.safetensors")
    print(f"{as_name}: loss {loss1:.4f}, after PGD-{steps} {adv_loss:.4f}", file=sys.stderr)


write(name, pgd_steps)
write(f"{name}-1step", 1)
print(f"{name}: {c}x{h}x{w}, {k} classes, references from onnxruntime {ort.__version__}")
