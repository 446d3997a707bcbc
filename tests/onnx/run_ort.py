"""Runs an ONNX file in onnxruntime on the raw input batch of a reference JSON written by
export_models.py and prints the logits as a JSON list (row-major).

    python tests/onnx/run_ort.py MODEL.onnx REFERENCE.json
"""
import json
import sys

import numpy as np
import onnxruntime as ort

model, reference = sys.argv[1], sys.argv[2]
with open(reference) as f:
    ref = json.load(f)
x = np.asarray(ref["input"], dtype=np.float32).reshape(ref["shape"])
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
logits = session.run(None, {session.get_inputs()[0].name: x})[0]
print(json.dumps(logits.flatten().tolist()))
