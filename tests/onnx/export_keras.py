"""Writes Keras models as ONNX, with their reference outputs, for trainer/tests/onnx_import.rs.

    KERAS_BACKEND=torch      python tests/onnx/export_keras.py OUT_DIR   (the torch venv)
    KERAS_BACKEND=tensorflow python tests/onnx/export_keras.py OUT_DIR   (the Keras venv)

Keras lays images out channels last ([N, H, W, C]). `model.export(format="onnx")` writes them
through torch.onnx.export on the torch backend (a Transpose around every convolution and pool;
biases, batch norms, activations and sums channels last, float casts everywhere) and through
tf2onnx on the TensorFlow backend (one Transpose after the input, or a Reshape when C is 1;
Squeeze after the global pool). Files are named keras-<model>-<backend>.onnx. Models:

- `cnn`: a course's MNIST CNN: Rescaling(1/255), same-padded convolutions (stride 1, and 2 with
  unequal padding), max pool, batch norm, Flatten of a 16-channel map (H, W, C order) into
  Dense, Dropout, and a softmax output (left out by the importer: the references are the
  logits before it, and the softmax of them is checked against onnxruntime here);
- `blocks`: a per-channel normalisation (a `Normalization` layer on the torch backend, `Rescaling`
  on TensorFlow's), ReLU6, DepthwiseConv2D,
  SeparableConv2D, a residual Add, AveragePooling2D, ZeroPadding2D, sigmoid,
  GlobalAveragePooling2D;
- `mobilenet_v2`: keras.applications.MobileNetV2 (alpha 0.35, 32 px, random weights: no
  download), softmax output.

The JSON beside each file has the raw input batch in [0, 1] as NCHW (the bundle's layout), the
mean and std that map it to the file's input ([0, 255] for the models that rescale inside),
the logits, and the gradient of the summed logit of class 3 with respect to the raw NCHW input,
by the backend's own autodiff in float32 (`gradient_f32` equal to it).
"""
import json
import os
import sys

import keras
import numpy as np
import onnxruntime as ort
from keras import layers

BACKEND = keras.backend.backend()


def cnn():
    inp = keras.Input((28, 28, 1))
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    logits = layers.Dense(10)(x)
    return inp, logits, 255.0


def blocks():
    inp = keras.Input((16, 16, 3))
    # (x - mean) / std per channel: Keras's Normalization layer on the torch backend. The
    # TensorFlow backend's export (tf2onnx) writes that layer's mean and variance as graph inputs
    # without their values (the importer says so, naming the fix), so there it is a Rescaling.
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.3, 0.25])
    if BACKEND == "torch":
        x = layers.Normalization(mean=mean.tolist(), variance=(std ** 2).tolist())(inp)
    else:
        x = layers.Rescaling(scale=(1 / std).tolist(), offset=(-mean / std).tolist())(inp)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu6")(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.SeparableConv2D(8, 3, padding="same", activation="relu")(y)
    x = layers.Add()([x, y])
    x = layers.AveragePooling2D(2)(x)
    x = layers.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = layers.Conv2D(12, 3, strides=2, activation="sigmoid")(x)
    x = layers.GlobalAveragePooling2D()(x)
    logits = layers.Dense(10)(x)
    return inp, logits, 1.0


def mobilenet_v2():
    net = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10, classifier_activation=None)
    return net.input, net.output, 1.0


def calibrate_batch_norms(model, images, rng):
    """Batch norms with the statistics of their inputs on `images` (in order, each after the
    ones before it) and random scales: with the identity statistics of a fresh network, deep
    ones (MobileNetV2) shrink the input gradient to ~1e-11 and a comparison would compare
    nothing."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            features = keras.ops.convert_to_numpy(keras.Model(model.input, layer.input)(images, training=False))
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(features.mean(axis=(0, 1, 2)).astype("float32"))
            layer.moving_variance.assign(features.var(axis=(0, 1, 2)).astype("float32"))
            layer.gamma.assign(rng.uniform(0.8, 1.2, c).astype("float32"))
            layer.beta.assign(rng.uniform(-0.1, 0.1, c).astype("float32"))


def logits_and_gradient(model, x_nhwc):
    """The model's outputs on `x_nhwc` and the gradient of their summed column 3 with respect
    to the input, by the backend's autodiff."""
    if BACKEND == "torch":
        import torch
        x = torch.tensor(x_nhwc, requires_grad=True)
        out = model(x, training=False)
        out[:, 3].sum().backward()
        return out.detach().cpu().numpy(), x.grad.cpu().numpy()
    import tensorflow as tf
    x = tf.constant(x_nhwc)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = model(x, training=False)
        target = tf.reduce_sum(out[:, 3])
    return out.numpy(), tape.gradient(target, x).numpy()


def write(out, name, build, softmax):
    keras.utils.set_random_seed(1)
    inp, logits, scale = build()
    body = keras.Model(inp, logits)
    rng = np.random.default_rng(1)
    h, w, c = body.input_shape[1:]
    calibrate_batch_norms(body, rng.uniform(0, scale, (16, h, w, c)).astype("float32"), rng)
    exported = keras.Model(inp, layers.Softmax()(logits)) if softmax else body
    x = rng.uniform(0, 1, (2, c, h, w)).astype("float32")
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1) * scale)
    exported(x_nhwc[:1])
    path = os.path.join(out, f"keras-{name}-{BACKEND}.onnx")
    exported.export(path, format="onnx", verbose=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ort_out = np.concatenate([session.run(None, {session.get_inputs()[0].name: x_nhwc[i:i + 1]})[0] for i in range(len(x))])
    ref_logits, grad = logits_and_gradient(body, x_nhwc)
    expected = np.exp(ref_logits - ref_logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    want = expected if softmax else ref_logits
    # A check that the file is the model, not of precision (the Rust test holds the importer to
    # 1e-4 of these references): float32 through 50 layers in two runtimes differs by ~1e-4.
    gap = np.abs(ort_out - want).max() / np.abs(want).max()
    assert gap < 1e-3, f"{path}: onnxruntime disagrees with Keras by {gap} of the largest output"
    # d/d(raw) = d/d(file input) * scale, as NCHW.
    grad = (grad * scale).transpose(0, 3, 1, 2)
    with open(os.path.join(out, f"keras-{name}-{BACKEND}.json"), "w") as f:
        json.dump({
            "shape": list(x.shape),
            "input": x.flatten().tolist(),
            "mean": [0.0] * c,
            "std": [1.0 / scale] * c,
            "logits": ref_logits.flatten().tolist(),
            "gradient": grad.flatten().tolist(),
            "gradient_f32": grad.flatten().tolist(),
        }, f)
    print(f"wrote {path}", file=sys.stderr)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write(out, "cnn", cnn, softmax=True)
    write(out, "blocks", blocks, softmax=False)
    write(out, "mobilenet_v2", mobilenet_v2, softmax=True)


if __name__ == "__main__":
    main()
