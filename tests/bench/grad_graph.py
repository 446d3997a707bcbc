"""The input gradient of an ONNX classifier, written as a plain ONNX graph, so that an
inference-only runtime (onnxruntime-web) can be timed on forward + input gradient and PGD.

    build_grad_model(model, maxpool="indices") -> onnx.ModelProto

The returned graph has the peer harness's interface (../shared/bench/peers/gen_models.py builds
the same by hand for its own small nets): inputs `input` [N,C,H,W], `onehot` [N,K], `x0`
[N,C,H,W], `eps` [], `alpha` []; outputs `loss` (mean cross-entropy), `grad` (d loss / d input)
and `x_next` (one PGD step: input + alpha sign(grad), projected on the eps-ball around x0 and on
[0, 1]).

Reverse mode over the forward graph's nodes, each with its own backward rule in plain ONNX ops:

- Conv (one group): ConvTranspose with the same weights, strides, pads and dilations, its
  output_padding chosen to give back the input's size;
- MaxPool, `maxpool="indices"`: the forward's Indices output (flat over N*C*H*W) scatters the
  output gradient back, summed where windows overlap (ScatterElements, reduction "add");
  `maxpool="masks"` (onnxruntime-web's WebGPU EP has no Indices output): for each tap (u, v) of
  the window, a depthwise ConvTranspose with a one-hot filter puts each window's maximum and
  gradient where that tap reads, and the gradient goes where the input equals that maximum;
- Relu: the gradient where the input is positive; Add: the gradient to both terms;
- GlobalAveragePool: the gradient spread evenly (divided by H*W); Flatten: a Reshape back;
- Gemm (transA 0): d A = alpha d Y B (or B^T without transB); BatchNormalization (inference):
  times scale / sqrt(var + eps) per channel.

Anything else raises with the node's name and op. Shapes come from ONNX shape inference, so the
forward graph needs static sizes (its batch may be symbolic).
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18  # ScatterElements with reduction "add" (16+); every forward op kept keeps its meaning


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def fresh(self, hint):
        self.count += 1
        return f"g/{hint}/{self.count}"

    def node(self, op, inputs, hint, outputs=1, **attrs):
        outs = [self.fresh(hint) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, array, hint):
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def max_pool_masks(b, n, a, shapes, src, g, zero):
    """d x of MaxPool node `n` without its Indices output: summed over the window's taps."""
    k, c = a["kernel_shape"], shapes[src][1]
    strides, pads = a.get("strides", [1] * len(k)), a.get("pads", [0] * 2 * len(k))
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1] * len(k))) or len(k) != 2:
        raise ValueError(f"node {n.name}: only 2-D MaxPool without ceil_mode or dilation has a mask backward here")
    ins, outs = shapes[src][2:], shapes[n.output[0]][2:]
    out_pad = [ins[i] - (strides[i] * (outs[i] - 1) + k[i] - pads[i] - pads[i + 2]) for i in range(2)]
    total = None
    for u in range(k[0]):
        for v in range(k[1]):
            one_hot = np.zeros((c, 1, k[0], k[1]), np.float32)
            one_hot[:, 0, u, v] = 1
            w = b.const(one_hot, "tap")
            place = dict(kernel_shape=k, strides=strides, pads=pads, group=c, output_padding=out_pad)
            peak = b.node("ConvTranspose", [n.output[0], w], "peak", **place)
            spread = b.node("ConvTranspose", [g, w], "spread", **place)
            part = b.node("Where", [b.node("Equal", [src, peak], "is_max"), spread, zero], "dtap")
            total = part if total is None else b.node("Add", [total, part], "dpool_sum")
    return total


def build_grad_model(model, maxpool="indices"):
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph
    if len(graph.input) - len({i.name for i in graph.initializer} & {i.name for i in graph.input}) != 1:
        raise ValueError("the gradient graph needs a model with one input")
    x_name, y_name = graph.input[0].name, graph.output[0].name
    shapes = {}
    for v in list(graph.value_info) + list(graph.input) + list(graph.output):
        shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    b = Builder()
    zero = b.const(np.array(0.0, np.float32), "zero")

    # The forward, kept as it is; MaxPool also writes the indices of its maxima.
    forward, indices = [], {}
    for n in graph.node:
        n2 = onnx.NodeProto()
        n2.CopyFrom(n)
        if n.op_type == "MaxPool" and len(n.output) == 1 and maxpool == "indices":
            indices[n.output[0]] = f"g/indices/{n.output[0]}"
            n2.output.append(indices[n.output[0]])
        forward.append(n2)

    # Loss: mean over the batch of -sum_k onehot * log_softmax(logits); its gradient (softmax - onehot) / N.
    logits = y_name
    log_sm = b.node("LogSoftmax", [logits], "logsm", axis=1)
    row = b.node("ReduceSum", [b.node("Mul", ["onehot", log_sm], "nll"), b.const(np.array([1], np.int64), "axes")], "row", keepdims=0)
    b.nodes.append(helper.make_node("Neg", [b.node("ReduceMean", [row], "mean", keepdims=0)], ["loss"]))
    batch = b.node("Cast", [b.node("Gather", [b.node("Shape", [x_name], "shape"), b.const(np.array(0, np.int64), "i0")], "n", axis=0)], "nf",
                   to=TensorProto.FLOAT)
    grads = {logits: b.node("Div", [b.node("Sub", [b.node("Softmax", [logits], "sm", axis=1), "onehot"], "sm_y"), batch], "dlogits")}

    def add_grad(name, g):
        grads[name] = b.node("Add", [grads[name], g], "acc") if name in grads else g

    for n in reversed(graph.node):
        if n.output[0] not in grads:
            continue  # does not reach the logits
        g, a, op = grads.pop(n.output[0]), attrs_of(n), n.op_type
        src = n.input[0]
        if op == "Conv":
            if a.get("group", 1) != 1:
                raise ValueError(f"node {n.name}: grouped Conv has no backward rule here")
            k = list(weights[n.input[1]].shape[2:])
            strides, dil = a.get("strides", [1] * len(k)), a.get("dilations", [1] * len(k))
            pads = a.get("pads", [0] * 2 * len(k))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ValueError(f"node {n.name}: auto_pad Conv has no backward rule here")
            ins, outs = shapes[src][2:], shapes[n.output[0]][2:]
            out_pad = [ins[i] - (strides[i] * (outs[i] - 1) + (k[i] - 1) * dil[i] + 1 - pads[i] - pads[i + len(k)]) for i in range(len(k))]
            add_grad(src, b.node("ConvTranspose", [g, n.input[1]], "dconv", kernel_shape=k, strides=strides, pads=pads, dilations=dil,
                                 output_padding=out_pad))
        elif op == "Relu":
            add_grad(src, b.node("Where", [b.node("Greater", [src, zero], "pos"), g, zero], "drelu"))
        elif op == "MaxPool" and maxpool == "masks":
            add_grad(src, max_pool_masks(b, n, a, shapes, src, g, zero))
        elif op == "MaxPool":
            shape, m1 = b.node("Shape", [src], "xshape"), b.const(np.array([-1], np.int64), "m1")
            zeros = b.node("ConstantOfShape", [shape], "zeros", value=numpy_helper.from_array(np.array([0.0], np.float32)))
            flat = b.node("Reshape", [zeros, m1], "zflat")
            scattered = b.node("ScatterElements", [flat, b.node("Reshape", [indices[n.output[0]], m1], "iflat"), b.node("Reshape", [g, m1], "gflat")],
                               "dpool", axis=0, reduction="add")
            add_grad(src, b.node("Reshape", [scattered, shape], "dpool_r"))
        elif op == "Add":
            for term in n.input:
                if shapes.get(term) != shapes[n.output[0]]:
                    raise ValueError(f"node {n.name}: Add with broadcasting has no backward rule here")
                if term not in weights:
                    add_grad(term, g)
        elif op == "GlobalAveragePool":
            hw = float(np.prod(shapes[src][2:]))
            add_grad(src, b.node("Expand", [b.node("Div", [g, b.const(np.array(hw, np.float32), "hw")], "dgap"), b.node("Shape", [src], "xshape")], "dgap_e"))
        elif op in ("Flatten", "Reshape"):
            add_grad(src, b.node("Reshape", [g, b.node("Shape", [src], "xshape")], "dflat"))
        elif op == "Identity" or op == "Dropout":
            add_grad(src, g)
        elif op == "Gemm":
            if a.get("transA", 0) != 0 or n.input[1] not in weights:
                raise ValueError(f"node {n.name}: Gemm with transA or a computed B has no backward rule here")
            w = weights[n.input[1]] * np.float32(a.get("alpha", 1.0))
            w = w if a.get("transB", 0) else w.T
            add_grad(src, b.node("MatMul", [g, b.const(w.astype(np.float32), "gemm_w")], "dgemm"))
        elif op == "BatchNormalization":
            scale, var, eps = weights[n.input[1]], weights[n.input[4]], a.get("epsilon", 1e-5)
            factor = (scale / np.sqrt(var + eps)).astype(np.float32).reshape(1, -1, 1, 1)
            add_grad(src, b.node("Mul", [g, b.const(factor, "bn")], "dbn"))
        else:
            raise ValueError(f"node {n.name}: no backward rule for {op}")
    if x_name not in grads:
        raise ValueError("the logits do not depend on the input")
    # The node that computes the input's gradient writes the output `grad` itself: an Identity
    # here made onnxruntime-web's JSEP WebGPU EP return another output's values (gen_models.py).
    last = next(n for n in b.nodes if n.output[0] == grads[x_name])
    last.output[0] = "grad"

    # One PGD step, written with Where (as gen_models.py does: Sign and Max/Min lack WebGPU kernels in some builds).
    nalpha = b.node("Neg", ["alpha"], "nalpha")
    step = b.node("Where", [b.node("Greater", ["grad", zero], "gpos"), "alpha",
                            b.node("Where", [b.node("Less", ["grad", zero], "gneg"), nalpha, zero], "aneg")], "astep")
    moved = b.node("Add", [x_name, step], "moved")
    lo, hi = b.node("Sub", ["x0", "eps"], "lo"), b.node("Add", ["x0", "eps"], "hi")
    inside = b.node("Where", [b.node("Greater", [moved, hi], "above"), hi, b.node("Where", [b.node("Less", [moved, lo], "below"), lo, moved], "xlo")], "xin")
    b.nodes.append(helper.make_node("Clip", [inside, zero, b.const(np.array(1.0, np.float32), "one")], ["x_next"]))

    c, h, w = shapes[x_name][1:]
    k = shapes[y_name][1]
    out_graph = helper.make_graph(
        forward + b.nodes, f"{graph.name}_inputgrad",
        [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, ["N", c, h, w]),
         helper.make_tensor_value_info("onehot", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["N", c, h, w]),
         helper.make_tensor_value_info("eps", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("loss", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("grad", TensorProto.FLOAT, ["N", c, h, w]),
         helper.make_tensor_value_info("x_next", TensorProto.FLOAT, ["N", c, h, w])],
        initializer=list(graph.initializer) + b.inits)
    out = helper.make_model(out_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="advlens-grad-graph")
    out.ir_version = 8
    onnx.checker.check_model(out, full_check=True)
    return out
