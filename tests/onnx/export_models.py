"""Writes ONNX models and their reference outputs for trainer/tests/onnx_import.rs.

    python tests/onnx/export_models.py OUT_DIR [SPEC_JSON ...]
    python tests/onnx/export_models.py OUT_DIR --imagenet resnet18 mobilenet_v2 ...   (224 px)

For each model: OUT_DIR/<name>.onnx and OUT_DIR/<name>.json holding the raw input batch (pixels
in [0, 1], NCHW), the mean and std that turn it into the ONNX input, onnxruntime's logits, and
PyTorch's gradient of the summed logit of class 3 with respect to the raw input, in float64
and in float32. Models:

- every SPEC_JSON (a bundle graph, e.g. the project's architectures): built in PyTorch by
  tests/bench/train_step.py's Graph, normalisation inside, exported by both exporters;
- torchvision resnet18 and alexnet-like vgg11_bn (random weights, no download) at 32 px;
- mobilenet_v2 at 32 px (depthwise convolutions, ReLU6 as Clip);
- `Branches`, by both exporters: Concat of Inception-like branches, Sigmoid, LeakyRelu, zero Pad
  before a Conv and an AveragePool, a dilated Conv, a MaxPool with ceil_mode whose windows tile;
- mobilenet_v3_small and efficientnet_b0 at 32 px (squeeze-and-excitation gates, HardSwish,
  HardSigmoid, SiLU as Sigmoid * x);
- `KerasSame`: stride-2 convolutions after unequal zero padding (Keras's and TensorFlow's `same`),
  as PyTorch writes them (`Pad` nodes) and as `auto_pad` SAME_UPPER / SAME_LOWER (built by hand
  from the same weights; its logits checked against PyTorch's before use);
- a decoder-like network with ConvTranspose layers (stride 2 with output_padding; grouped and
  dilated) and a nearest-neighbour Upsample (Resize), by both exporters;
- bilinear Upsample (Resize in linear mode) with half-pixel centres and with aligned corners,
  by both exporters;
- timm's ghostnet_050, mixnet_s and rexnet_100 at 32 px (channel Slice and Split of layer
  outputs), and tf_efficientnet_b0 by both exporters (TensorFlow's "same" padding computed from
  Shape, Ceil and Clip on the sizes), and convnext_atto by both exporters (LayerNormalization
  between transposes, GELU as Erf or Gelu, a per-channel layer scale; the dynamo file's head
  flattens the batch and gathers one image back);
- a small network with an InstanceNormalization (scale and shift set away from the identity);
- a small network with an ELU, which the importer must refuse naming the node and the op.
"""
import copy
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import timm
import torch
import torchvision
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from train_step import Graph  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class Normalised(torch.nn.Module):
    """`model` applied to (x - mean) / std: the function of raw pixels the bundle computes."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        c = len(mean)
        self.register_buffer("mean", torch.tensor(mean).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, c, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def write(out, name, model, shape, mean, std, dynamo):
    torch.manual_seed(1)
    model = model.eval()
    x = torch.rand(2, *shape)
    onnx_input = ((x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)).contiguous()
    path = os.path.join(out, name + ".onnx")
    # One self-contained file: the dynamo exporter otherwise writes the weights beside it.
    kwargs = {"dynamo": dynamo, "external_data": False}
    if not dynamo:
        kwargs["opset_version"] = 17
    torch.onnx.export(model, (onnx_input[:1],), path, input_names=["image"], output_names=["logits"],
                      dynamic_axes=None if dynamo else {"image": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = np.concatenate([session.run(None, {session.get_inputs()[0].name: onnx_input[i:i + 1].numpy()})[0] for i in range(2)])
    # The gradient reference is autograd in float64. PyTorch's own float32 gradient is kept as
    # the bar float32 arithmetic can be held to: at 224 px resnet18's is 1.6% (of the largest
    # entry) away from the float64 one (rounding flips ReLUs that sit at ~0).
    raw32 = x.clone().requires_grad_(True)
    Normalised(model, mean, std)(raw32)[:, 3].sum().backward()
    raw = x.clone().double().requires_grad_(True)
    torch_logits = Normalised(copy.deepcopy(model).double(), mean, std).double()(raw)
    torch_logits[:, 3].sum().backward()
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({
            "shape": list(x.shape),
            "input": x.flatten().tolist(),
            "mean": mean,
            "std": std,
            "logits": logits.flatten().tolist(),
            "torch_logits": torch_logits.detach().flatten().tolist(),
            "gradient": raw.grad.flatten().tolist(),
            "gradient_f32": raw32.grad.flatten().tolist(),
        }, f)
    print(f"wrote {path}", file=sys.stderr)


class Branches(torch.nn.Module):
    """The ops the project's own architectures do not use, as PyTorch writes them."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.padded = torch.nn.Conv2d(8, 6, 3)  # after an explicit F.pad: its padding
        self.dilated = torch.nn.Conv2d(8, 5, 3, padding=2, dilation=2)
        self.squeeze = torch.nn.Conv2d(8, 4, 1)
        self.pool = torch.nn.MaxPool2d(3, 1, 1)
        self.halve = torch.nn.MaxPool2d(2, 2, ceil_mode=True)  # 16 -> 8: the windows tile
        self.smooth = torch.nn.AvgPool2d(3, 1)  # after an explicit F.pad
        self.head = torch.nn.Linear(23, 10)

    def forward(self, x):
        x = F.leaky_relu(self.bn(self.stem(x)), 0.1)
        a = F.relu(self.padded(F.pad(x, (1, 1, 1, 1))))
        b = F.leaky_relu(self.dilated(x), 0.2)
        c = torch.sigmoid(self.squeeze(x))
        joined = torch.cat([a, b, c, self.pool(x)], dim=1)
        y = self.smooth(F.pad(self.halve(joined), (1, 1, 1, 1)))
        return self.head(y.mean(dim=(2, 3)))


class KerasSame(torch.nn.Module):
    """`same` padding at stride 2 on even sizes pads one pixel more at the end (SAME_UPPER,
    Keras's and TensorFlow's) or at the start (SAME_LOWER): unequal sides."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 6, 3, stride=2)
        self.b = torch.nn.Conv2d(6, 4, 3, stride=2)
        self.head = torch.nn.Linear(4, 10)

    def forward(self, x):
        h = F.relu(self.a(F.pad(x, (0, 1, 0, 1))))  # SAME_UPPER on 8 px: 0 before, 1 after
        h = F.relu(self.b(F.pad(h, (1, 0, 1, 0))))  # SAME_LOWER on 4 px: 1 before, 0 after
        return self.head(h.mean(dim=(2, 3)))


def keras_same_autopad(out, model, reference):
    """`model` (a KerasSame) as Keras's converter writes it: Convs with auto_pad, no Pad nodes.
    The reference of its PyTorch export is reused with this file's onnxruntime logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weights = [numpy_helper.from_array(t.detach().numpy().astype(np.float32), name) for name, t in model.state_dict().items()]
    conv = lambda x, w, y, mode: helper.make_node("Conv", [x, w + ".weight", w + ".bias"], [y], kernel_shape=[3, 3], strides=[2, 2], auto_pad=mode)
    nodes = [
        conv("image", "a", "a_out", "SAME_UPPER"), helper.make_node("Relu", ["a_out"], ["a_relu"]),
        conv("a_relu", "b", "b_out", "SAME_LOWER"), helper.make_node("Relu", ["b_out"], ["b_relu"]),
        helper.make_node("GlobalAveragePool", ["b_relu"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "head.weight", "head.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "keras_same", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], initializer=weights)
    path = os.path.join(out, "keras-same-autopad.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with open(os.path.join(out, reference + ".json")) as f:
        ref = json.load(f)
    x = np.array(ref["input"], dtype=np.float32).reshape(ref["shape"])
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = np.concatenate([session.run(None, {"image": x[i:i + 1]})[0] for i in range(len(x))])
    assert np.allclose(logits.flatten(), ref["torch_logits"], rtol=1e-4, atol=1e-5), "auto_pad is not the explicit padding"
    ref["logits"] = logits.flatten().tolist()
    with open(os.path.join(out, "keras-same-autopad.json"), "w") as f:
        json.dump(ref, f)
    print(f"wrote {path}", file=sys.stderr)


def calibrated(model, shape, mean, std):
    """`model` with its batch-norm statistics measured on random images: with the default
    running statistics of a fresh network, deep ones (mobilenet_v2) shrink their activations to
    ~1e-10 and a comparison of outputs would compare nothing."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            Normalised(model, mean, std)(torch.rand(16, *shape))
    return model.eval()


def imagenet(out, names):
    """torchvision models at ImageNet's 224 px and 1000 classes (random weights, batch-norm
    statistics measured on random images), by the TorchScript exporter."""
    for name in names:
        model = calibrated(getattr(torchvision.models, name)(weights=None), (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD)
        write(out, f"{name}-224-torchscript", model, (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, False)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    if sys.argv[2:3] == ["--imagenet"]:
        return imagenet(out, sys.argv[3:])
    for spec_path in sys.argv[2:]:
        with open(spec_path) as f:
            spec = json.load(f)
        graph = Graph(spec)
        for p in graph.parameters():
            # Random weights of a trained model's size.
            torch.nn.init.normal_(p, std=0.1)
        inp = spec["input"]
        shape = (inp["channels"], inp["height"], inp["width"])
        c = inp["channels"]
        # Batch-norm statistics measured on random images: with made-up ones, the narrow vgg's
        # and resnet's activations shrink ~0.4x per layer and their input gradients to 1e-10,
        # which a comparison relative to the largest value cannot check.
        graph = calibrated(graph, shape, [0.0] * c, [1.0] * c)
        # The graph normalises inside: the ONNX input is the raw image.
        for dynamo in (False, True):
            write(out, f"{spec['name']}-{'dynamo' if dynamo else 'torchscript'}", graph, shape, [0.0] * c, [1.0] * c, dynamo)
    resnet = calibrated(torchvision.models.resnet18(weights=None, num_classes=10), (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD)
    write(out, "resnet18-32-torchscript", resnet, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, False)
    write(out, "resnet18-32-dynamo", resnet, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, True)
    mobilenet = calibrated(torchvision.models.mobilenet_v2(weights=None, num_classes=10), (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD)
    write(out, "mobilenet_v2-32-torchscript", mobilenet, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, False)
    branches = calibrated(Branches(), (3, 16, 16), IMAGENET_MEAN, IMAGENET_STD)
    write(out, "branches-torchscript", branches, (3, 16, 16), IMAGENET_MEAN, IMAGENET_STD, False)
    write(out, "branches-dynamo", branches, (3, 16, 16), IMAGENET_MEAN, IMAGENET_STD, True)
    keras = KerasSame()
    write(out, "keras-same-torchscript", keras, (3, 8, 8), [0.0] * 3, [1.0] * 3, False)
    keras_same_autopad(out, keras, "keras-same-torchscript")
    for name in ("mobilenet_v3_small", "efficientnet_b0"):
        gated = calibrated(getattr(torchvision.models, name)(weights=None, num_classes=10), (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD)
        write(out, f"{name}-32-torchscript", gated, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, False)
    decoder = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1), torch.nn.ReLU(),  # 4 -> 8 px
        torch.nn.ConvTranspose2d(4, 6, 3, groups=2, dilation=2), torch.nn.Sigmoid(),  # 8 -> 12 px
        torch.nn.Upsample(scale_factor=2, mode="nearest"), torch.nn.Conv2d(6, 3, 3, stride=2),  # 24 -> 11 px
        torch.nn.Flatten(), torch.nn.Linear(3 * 11 * 11, 5))
    for dynamo in (False, True):
        write(out, f"decoder-{'dynamo' if dynamo else 'torchscript'}", decoder, (3, 8, 8), [0.0] * 3, [1.0] * 3, dynamo)
    # Bilinear upsampling (segmentation heads, feature pyramids): half-pixel centres, aligned corners.
    smooth = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.Conv2d(6, 4, 3, padding=1), torch.nn.Sigmoid(),  # 4 -> 8 px
        torch.nn.Upsample(scale_factor=3, mode="bilinear", align_corners=True), torch.nn.Conv2d(4, 3, 3, stride=2),  # 24 -> 11 px
        torch.nn.Flatten(), torch.nn.Linear(3 * 11 * 11, 5))
    for dynamo in (False, True):
        write(out, f"bilinear-{'dynamo' if dynamo else 'torchscript'}", smooth, (3, 8, 8), [0.0] * 3, [1.0] * 3, dynamo)
    # timm networks that slice and split their maps along the channels (Slice, Split).
    for name in ("ghostnet_050", "mixnet_s", "rexnet_100"):
        net = calibrated(timm.create_model(name, pretrained=False, num_classes=10), (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD)
        write(out, f"timm-{name}-32-torchscript", net, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, False)
    # A TensorFlow port: "same" padding computed from sizes read with Shape (Ceil, Clip and Pad
    # on the sizes) by the TorchScript exporter; the dynamo exporter folds the sizes itself.
    net = calibrated(timm.create_model("tf_efficientnet_b0", pretrained=False, num_classes=10), (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD)
    for dynamo in (False, True):
        write(out, f"timm-tf_efficientnet_b0-32-{'dynamo' if dynamo else 'torchscript'}", net, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, dynamo)
    # ConvNeXt: LayerNorm over the channels between two transposes, exact GELU (Erf), layer scale.
    net = timm.create_model("convnext_atto", pretrained=False, num_classes=10).eval()
    with torch.no_grad():
        # The layer scales start at 1e-6, which would leave every block's GELU and norm out of
        # the logits that the test compares.
        for name, p in net.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.0)
    for dynamo in (False, True):
        write(out, f"timm-convnext_atto-32-{'dynamo' if dynamo else 'torchscript'}", net, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, dynamo)
    # Instance normalisation (style-transfer and GAN networks), its scale and shift not the identity.
    normed = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.InstanceNorm2d(4, affine=True), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 4))
    with torch.no_grad():
        normed[1].weight.uniform_(0.5, 1.5)
        normed[1].bias.uniform_(-0.5, 0.5)
    for dynamo in (False, True):
        write(out, f"instancenorm-{'dynamo' if dynamo else 'torchscript'}", normed, (3, 8, 8), [0.0] * 3, [1.0] * 3, dynamo)
    elu = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ELU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 4))
    write(out, "refused-elu", elu, (3, 8, 8), [0.0] * 3, [1.0] * 3, False)


if __name__ == "__main__":
    main()
