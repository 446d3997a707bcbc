//! From an ONNX graph to a bundle graph, node by node in the file's (topological) order.
//!
//! Every ONNX value is either a constant (an initialiser or a `Constant` node's output), or the
//! output of a bundle node, or the model input. Ops that are not layers are folded into these:
//! see the module docs of [`super`].

use std::collections::{HashMap, HashSet};

use super::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use super::{ImportOptions, SUPPORTED_OPS};
use crate::model::{infer_shape, limits, InputSpec, ModelSpec, Node, Op, Provenance, FORMAT_NAME, FORMAT_VERSION, INPUT_NAME};
use crate::{Error, Result, Tensor};

use super::fold::{fold, Const, FOLDABLE};

mod layers;
mod layout;
mod norms;
mod slices;

fn err(text: String) -> Error {
    Error::Onnx(text)
}

/// Translates `graph` into a bundle description and its weights.
pub(super) fn translate(graph: &GraphProto, model: &ModelProto, opset: i64, options: &ImportOptions) -> Result<(ModelSpec, HashMap<String, Tensor>)> {
    let mut t = Translator::default();
    for init in &graph.initializer {
        t.consts.insert(init.name.clone(), constant(init)?);
    }
    for node in &graph.node {
        for input in &node.input {
            *t.uses.entry(input.clone()).or_default() += 1;
        }
    }
    let (input_name, dims) = model_input(graph)?;
    let channels_last = layout::channels_last_input(graph, &input_name, dims, &t.consts);
    let [c, h, w] = if channels_last { [dims[2], dims[0], dims[1]] } else { dims };
    if c > limits::MAX_CHANNELS || h > limits::MAX_SIDE || w > limits::MAX_SIDE {
        return Err(Error::TooLarge(format!("input `{input_name}` is {c}x{h}x{w}: more than {} channels or {} pixels a side", limits::MAX_CHANNELS, limits::MAX_SIDE)));
    }
    if channels_last {
        t.channels_last.insert(input_name, INPUT_NAME.to_string());
    } else {
        t.values.insert(input_name, INPUT_NAME.to_string());
    }
    t.graph_output = graph.output.first().map(|o| o.name.clone()).unwrap_or_default();
    t.shapes.insert(INPUT_NAME.to_string(), vec![c, h, w]);
    let per_channel = |v: &Option<Vec<f32>>, default: f32, flag: &str| -> Result<Vec<f32>> {
        match v {
            None => Ok(vec![default; c]),
            Some(v) if v.len() == c => Ok(v.clone()),
            Some(v) if v.len() == 1 => Ok(vec![v[0]; c]),
            Some(v) => Err(err(format!("{flag} has {} values, the model's input has {c} channels", v.len()))),
        }
    };
    t.mean = per_channel(&options.mean, 0.0, "--mean")?;
    t.std = per_channel(&options.std, 1.0, "--std")?;
    if t.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || t.mean.iter().any(|m| !m.is_finite()) {
        return Err(err("--mean must be finite and --std positive".into()));
    }
    for (i, node) in graph.node.iter().enumerate() {
        t.node(i, node, opset).map_err(|e| match e {
            Error::Onnx(text) => err(format!("node `{}` ({}): {text}", node_label(node, i), node.op_type)),
            other => other,
        })?;
    }
    let output = match graph.output.as_slice() {
        [one] => one,
        [] => return Err(err("the graph has no output".into())),
        many => return Err(err(format!("the graph has {} outputs; a classifier has one (its logits)", many.len()))),
    };
    let out_node = t.values.get(&output.name).cloned().ok_or_else(|| err(format!("the graph output `{}` is a constant or missing", output.name)))?;
    if out_node == INPUT_NAME {
        return Err(err("the graph output is its input: there are no layers".into()));
    }
    let classes_count = match t.shapes[&out_node].as_slice() {
        [k] => *k,
        other => return Err(err(format!("the output has per-image shape {other:?}; a classifier gives [classes]"))),
    };
    // Class names: given, else those an advlens export stored in the metadata, else numbers.
    let stored = model
        .metadata_props
        .iter()
        .find(|p| p.key == super::CLASSES_KEY)
        .and_then(|p| serde_json::from_str::<Vec<String>>(&p.value).ok())
        .filter(|names| names.len() == classes_count);
    let classes = match (&options.classes, stored) {
        (Some(names), _) if names.len() != classes_count => {
            return Err(err(format!("{} class names were given, the model has {classes_count} outputs", names.len())))
        }
        (Some(names), _) => names.clone(),
        (None, Some(names)) => names,
        (None, None) => (0..classes_count).map(|k| format!("class {k}")).collect(),
    };
    let mut provenance = Provenance { dataset: options.dataset.clone(), ..Default::default() };
    let producer = format!("{} {}", model.producer_name, model.producer_version).trim().to_string();
    let mut source = serde_json::json!({ "format": "onnx", "opset": opset, "producer": producer });
    if options.mean.is_none() && options.std.is_none() && t.std.iter().all(|&s| s >= BYTE_RESCALE_STD) {
        // The graph divides its input by ~255 itself (Keras's `Rescaling(1/255)`, or
        // `Rescaling(1/127.5, offset=-1)`): it was trained on 0-255 pixels. Starting from a
        // mean of 0, the folded normalisation is linear in the starting std, so 0-255 pixels
        // (a starting std of 1/255) scale both by 1/255.
        t.mean.iter_mut().for_each(|m| *m /= 255.0);
        t.std.iter_mut().for_each(|s| *s /= 255.0);
        source["pixels"] = "0-255 (the graph rescales its input itself)".into();
    }
    if let (Some(mean), Some(std)) = (&options.mean, &options.std) {
        // Chosen by the user (--mean/--std, the page's pixel fields): the file cannot say.
        source["normalisation"] = serde_json::json!({ "mean": mean, "std": std });
    }
    if channels_last {
        source["input_layout"] = "NHWC (read as NCHW)".into();
    }
    if let Some(op) = &t.dropped_softmax {
        source["dropped_output_op"] = op.clone().into();
    }
    provenance.extra.insert("imported_from".into(), source);
    let spec = ModelSpec {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name: options.name.clone(),
        input: InputSpec { channels: c, height: h, width: w, mean: t.mean, std: t.std },
        classes,
        nodes: t.nodes,
        output: out_node,
        hierarchy: Default::default(),
        provenance,
    };
    Ok((spec, t.weights))
}

/// A folded input std at or above this on every channel means the graph rescales 0-255 pixels
/// itself: [0, 1] pixels would reach it below 0.02.
const BYTE_RESCALE_STD: f32 = 50.0;

/// Why a Keras model has inputs besides its image, when the names say: Keras's TensorFlow export
/// (tf2onnx) writes a `Normalization` layer's mean and variance as graph inputs without their
/// values, so the file cannot be read as it is.
fn keras_normalization_hint(names: &[&str]) -> &'static str {
    if names.iter().any(|n| n.to_ascii_lowercase().contains("normalization")) {
        ". The other inputs are a Keras `Normalization` layer's mean and variance, which Keras's TensorFlow \
         export leaves out of the file: export on the torch backend (`KERAS_BACKEND=torch`), where the \
         layer imports as the model's mean and std, or write it as `Rescaling(scale=1/std, offset=-mean/std)`"
    } else {
        ""
    }
}

/// The one graph input that is not an initialiser: its name and its per-image dims (`[C, H, W]`,
/// or `[H, W, C]` for Keras and TensorFlow: see [`layout::channels_last_input`]).
fn model_input(graph: &GraphProto) -> Result<(String, [usize; 3])> {
    let initialisers: HashSet<&str> = graph.initializer.iter().map(|i| i.name.as_str()).collect();
    let inputs: Vec<_> = graph.input.iter().filter(|i| !initialisers.contains(i.name.as_str())).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(err("the graph has no input".into())),
        many => {
            let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
            return Err(err(format!("the graph has {} inputs ({}); advlens models take one image batch{}", many.len(), names.join(", "), keras_normalization_hint(&names))));
        }
    };
    let tensor = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).ok_or_else(|| err(format!("input `{}` is not a tensor", input.name)))?;
    if tensor.elem_type != super::proto::data_type::FLOAT {
        return Err(err(format!("input `{}` has element type {} (only float, 1, images are read)", input.name, tensor.elem_type)));
    }
    let dims = tensor.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    if dims.len() != 4 {
        return Err(err(format!("input `{}` has {} dimensions; an image batch has 4 (N, C, H, W, or N, H, W, C)", input.name, dims.len())));
    }
    let fixed = |k: usize| dims[k].dim_value.filter(|&v| v > 0).and_then(|v| usize::try_from(v).ok());
    match (fixed(1), fixed(2), fixed(3)) {
        (Some(a), Some(b), Some(c)) => Ok((input.name.clone(), [a, b, c])),
        _ => Err(err(format!(
            "input `{}` has a dynamic channel count or spatial size ({}): re-export with a fixed input size (e.g. torch.onnx.export with a 1x3x224x224 example and no dynamic_axes on H and W)",
            input.name,
            dims.iter().map(|d| d.dim_value.map_or_else(|| d.dim_param.clone().unwrap_or_else(|| "?".into()), |v| v.to_string())).collect::<Vec<_>>().join("x")
        ))),
    }
}

fn constant(t: &TensorProto) -> Result<Const> {
    let dims = t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| err(format!("tensor `{}` has a negative dimension", t.name)))).collect::<Result<Vec<_>>>()?;
    Ok(match t.data_type {
        super::proto::data_type::FLOAT => Const::floats(dims, t.floats().map_err(err)?),
        super::proto::data_type::INT64 => Const::ints(dims, t.int64s().map_err(err)?),
        super::proto::data_type::INT32 => Const::ints(dims, t.int32s().map_err(err)?),
        _ => Const::opaque(dims),
    })
}

fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        node.name.clone()
    }
}

/// Input `k` of `node`, or an error saying it is missing.
fn input(node: &NodeProto, k: usize) -> Result<&str> {
    node.input.get(k).map(String::as_str).filter(|s| !s.is_empty()).ok_or_else(|| err(format!("input {k} is missing")))
}

/// The first output of `node`.
fn output(node: &NodeProto) -> Result<&str> {
    node.output.first().map(String::as_str).ok_or_else(|| err("it has no output".into()))
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// One value for both spatial axes, from an attribute of 2 (or, for pads, 4 equal) values.
fn square(node: &NodeProto, name: &str, default: i64) -> Result<usize> {
    let values = attr_ints(node, name).unwrap_or_else(|| vec![default]);
    let first = *values.first().unwrap_or(&default);
    if values.iter().any(|&v| v != first) {
        return Err(err(format!("{name} {values:?} differ between axes or sides; only square, symmetric windows are supported")));
    }
    usize::try_from(first).map_err(|_| err(format!("{name} {values:?} is negative")))
}

#[derive(Default)]
struct Translator {
    consts: HashMap<String, Const>,
    /// ONNX value -> the bundle node (or [`INPUT_NAME`]) that computes it.
    values: HashMap<String, String>,
    /// Per-image output shape of every bundle node.
    shapes: HashMap<String, Vec<usize>>,
    nodes: Vec<Node>,
    weights: HashMap<String, Tensor>,
    names: HashSet<String>,
    /// How many nodes read each ONNX value.
    uses: HashMap<String, usize>,
    /// Linear layers made from a `MatMul`, whose bias a following `Add` may still fill.
    open_bias: HashSet<String>,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// Whether a layer has read the model input (normalisation folding stops there).
    input_read: bool,
    /// Outputs of zero `Pad`s: the padded value and the padding on every side, waiting for the
    /// convolution or average pool that reads it to take the padding over.
    pads: HashMap<String, (String, usize)>,
    /// Channels-last views of bundle nodes (see [`layout`]): ONNX value -> the node holding
    /// its map channels first.
    channels_last: HashMap<String, String>,
    /// Channels-last maps flattened in `H, W, C` order: the `Flatten` node and the map's
    /// `[C, H, W]`, for the `Dense` layer that reads them.
    hwc_flat: HashMap<String, (String, [usize; 3])>,
    /// Steps of an erf GELU whose input is a channels-last view.
    gelu_views: HashSet<String>,
    /// The graph's output, which a final `Softmax` may compute.
    graph_output: String,
    /// The final `Softmax` (or `LogSoftmax`) left out: advlens reads logits.
    dropped_softmax: Option<String>,
    /// Layer outputs flattened together with the batch (`Reshape` to `[-1]`), for a `Gather`
    /// that shapes one image back.
    batch_flat: HashMap<String, String>,
    /// Values part way through PyTorch's opset-17 GELU, with the node it is of.
    gelu: HashMap<String, (String, norms::GeluStep)>,
}

impl Translator {
    fn node(&mut self, index: usize, node: &NodeProto, opset: i64) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(err(format!("domain `{}` is not the standard one; only ai.onnx ops are read", node.domain)));
        }
        let present: Vec<&String> = node.input.iter().filter(|i| !i.is_empty()).collect();
        if FOLDABLE.contains(&node.op_type.as_str()) && !present.is_empty() && present.iter().all(|i| self.consts.contains_key(*i)) {
            let inputs: Vec<Option<&Const>> = node.input.iter().map(|i| self.consts.get(i)).collect();
            let value = fold(node, &inputs, opset)?;
            self.consts.insert(output(node)?.to_string(), value);
            return Ok(());
        }
        if self.elementwise_view(index, node, opset)? {
            return Ok(());
        }
        if self.gelu_step(index, node)? {
            return Ok(());
        }
        if node.op_type == "Gather" && node.input.first().is_some_and(|x| self.batch_flat.contains_key(x)) {
            return self.gather_view(node);
        }
        match node.op_type.as_str() {
            "Constant" => self.constant_node(node),
            "Transpose" => self.transpose(node),
            "LayerNormalization" => self.layer_norm(index, node),
            "InstanceNormalization" => self.instance_norm(index, node),
            "Gelu" => self.gelu(index, node),
            "Identity" | "Dropout" => {
                self.check_unused_outputs(node, 1)?;
                self.alias(node)
            }
            "Cast" => self.cast(node),
            "Squeeze" => self.squeeze(node, opset),
            "Conv" => self.conv(index, node),
            "ConvTranspose" => self.conv_transpose(index, node),
            "Resize" | "Upsample" => self.resize(index, node, opset),
            "Relu" => self.layer(index, node, Op::Relu, vec![]),
            "Sigmoid" => self.layer(index, node, Op::Sigmoid, vec![]),
            "LeakyRelu" => self.layer(index, node, Op::LeakyRelu { alpha: attr_f(node, "alpha", 0.01) }, vec![]),
            "Concat" => self.concat(index, node),
            "Slice" => self.slice(index, node),
            "Split" => self.split(index, node, opset),
            "HardSigmoid" => self.layer(index, node, Op::HardSigmoid { alpha: attr_f(node, "alpha", 0.2), beta: attr_f(node, "beta", 0.5) }, vec![]),
            "HardSwish" => self.layer(index, node, Op::HardSwish, vec![]),
            "Unsqueeze" => self.unsqueeze(node, opset),
            "Shape" => self.shape(node),
            "Pad" => self.pad(index, node, opset),
            "Clip" => self.clip(index, node),
            "MaxPool" | "AveragePool" => self.pool(index, node),
            "GlobalAveragePool" => self.layer(index, node, Op::GlobalAvgPool, vec![]),
            "ReduceMean" => self.reduce_mean(index, node, opset),
            "BatchNormalization" => self.batch_norm(index, node),
            "Flatten" => self.flatten(index, node, attr_i(node, "axis", 1) == 1),
            "Reshape" => self.reshape(index, node),
            "Gemm" => self.gemm(index, node),
            "MatMul" => self.matmul(index, node),
            "Add" | "Sub" | "Div" | "Mul" => self.arithmetic(index, node),
            "Softmax" | "LogSoftmax" => self.softmax(node),
            other => Err(err(format!(
                "op `{other}` is not supported{}; supported: {} (and, on constants only, {})",
                match other {
                    _ if FOLDABLE.contains(&other) => " on a layer's output (only on constants, which are folded)",
                    _ => "",
                },
                SUPPORTED_OPS.join(", "),
                FOLDABLE.join(", ")
            ))),
        }
    }

    /// The bundle node computing ONNX value `name`.
    fn act(&self, name: &str) -> Result<String> {
        if self.pads.contains_key(name) {
            return Err(err(format!("input `{name}` is a Pad's output; a zero Pad is supported only right before a Conv or an AveragePool (which take its padding over)")));
        }
        if self.channels_last.contains_key(name) {
            return Err(err(format!(
                "input `{name}` is a layer's output laid out channels last (Keras, TensorFlow); only elementwise ops, the Transpose back to channels first, a flatten, a mean over H and W, a zero Pad and LayerNormalization read such values"
            )));
        }
        if self.hwc_flat.contains_key(name) {
            return Err(err(format!("input `{name}` is a channels-last map flattened in H, W, C order (Keras's Flatten); only a Dense layer (MatMul or Gemm) may read it")));
        }
        if self.batch_flat.contains_key(name) {
            return Err(err(format!("input `{name}` is a layer output flattened with the batch (Reshape to [-1]); only a Gather of one image in order may read it")));
        }
        if self.gelu.contains_key(name) {
            return Err(err(format!("input `{name}` is part of an erf GELU (x (1 + erf(x / sqrt(2))) / 2), which is supported only as PyTorch writes it whole")));
        }
        match self.values.get(name) {
            Some(v) => Ok(v.clone()),
            None if self.consts.contains_key(name) => Err(err(format!("input `{name}` is a constant where a layer's output is expected"))),
            None => Err(err(format!("input `{name}` is not computed by any earlier node"))),
        }
    }

    fn floats(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let c = self.consts.get(name).ok_or_else(|| err(format!("input `{name}` must be a constant (an initialiser), but the graph computes it")))?;
        if c.dims.contains(&0) {
            return Err(err(format!("constant `{name}` has an empty dimension {:?}", c.dims)));
        }
        let values = c.as_floats().ok_or_else(|| err(format!("constant `{name}` is not float")))?;
        Ok((c.dims.clone(), values))
    }

    fn ints(&self, name: &str) -> Result<Vec<i64>> {
        let c = self.consts.get(name).ok_or_else(|| err(format!("input `{name}` must be a constant, but the graph computes it")))?;
        c.as_ints().ok_or_else(|| err(format!("constant `{name}` is not int64")))
    }

    fn check_unused_outputs(&self, node: &NodeProto, keep: usize) -> Result<()> {
        if let Some(extra) = node.output.iter().skip(keep).find(|o| !o.is_empty() && self.uses.get(*o).copied().unwrap_or(0) > 0) {
            return Err(err(format!("its extra output `{extra}` is used; only the first output of {} is supported", node.op_type)));
        }
        Ok(())
    }

    /// A unique bundle name made of letters, digits and `_` (the trainer's libtorch variable
    /// names cannot hold `.` or `/`).
    fn fresh_name(&mut self, node: &NodeProto, index: usize) -> String {
        let base: String = node.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let base = base.trim_matches('_').to_string();
        let base = if base.is_empty() { format!("{}{index}", node.op_type.to_ascii_lowercase()) } else { base };
        let mut name = base.clone();
        let mut k = 1;
        while name == INPUT_NAME || self.names.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.names.insert(name.clone());
        name
    }

    fn alias(&mut self, node: &NodeProto) -> Result<()> {
        let source = node.input.first().ok_or_else(|| err("it has no input".into()))?;
        let out = node.output.first().ok_or_else(|| err("it has no output".into()))?;
        if let Some(c) = self.consts.get(source).cloned() {
            self.consts.insert(out.clone(), c);
        } else if let Some(view) = self.channels_last.get(source).cloned() {
            self.channels_last.insert(out.clone(), view);
        } else if let Some(flat) = self.hwc_flat.get(source).cloned() {
            self.hwc_flat.insert(out.clone(), flat);
        } else {
            let v = self.act(source)?;
            self.values.insert(out.clone(), v);
        }
        Ok(())
    }

    /// Adds a bundle node reading the first input of `node` (and the second for `Add`).
    fn push(&mut self, index: usize, node: &NodeProto, op: Op, inputs: Vec<String>, weights: Vec<(&str, Tensor)>) -> Result<String> {
        let name = self.push_inner(index, node, op, inputs, weights)?;
        let out = node.output.first().ok_or_else(|| err("it has no output".into()))?;
        self.values.insert(out.clone(), name.clone());
        Ok(name)
    }

    /// Adds a bundle node that `node` needs before its own (a convolution's unequal padding),
    /// not bound to any ONNX value.
    fn push_inner(&mut self, index: usize, node: &NodeProto, op: Op, inputs: Vec<String>, weights: Vec<(&str, Tensor)>) -> Result<String> {
        let name = self.fresh_name(node, index);
        if inputs.iter().any(|i| i == INPUT_NAME) {
            self.input_read = true;
        }
        let in_shapes: Vec<&[usize]> = inputs.iter().map(|i| self.shapes[i].as_slice()).collect();
        let shape = infer_shape(&name, &op, &in_shapes).map_err(|e| err(e.to_string()))?;
        for (leaf, tensor) in weights {
            self.weights.insert(format!("{name}.{leaf}"), tensor);
        }
        self.nodes.push(Node { name: name.clone(), inputs, op });
        self.shapes.insert(name.clone(), shape);
        Ok(name)
    }

    fn layer(&mut self, index: usize, node: &NodeProto, op: Op, weights: Vec<(&str, Tensor)>) -> Result<()> {
        let x = self.act(node.input.first().ok_or_else(|| err("it has no input".into()))?)?;
        self.push(index, node, op, vec![x], weights).map(drop)
    }

    /// `Cast` of a layer's output to float (Keras's torch backend casts float to float around
    /// every op): the same values.
    fn cast(&mut self, node: &NodeProto) -> Result<()> {
        match attr(node, "to").map(|a| a.i) {
            Some(to) if to == i64::from(super::proto::data_type::FLOAT) => self.alias(node),
            to => Err(err(format!("a Cast of a layer's output to type {} is not supported (only to float, 1)", to.map_or_else(|| "?".into(), |t| t.to_string())))),
        }
    }

    /// A `Softmax` (or `LogSoftmax`) computing the graph's output is left out: advlens's
    /// attacks and analyses read the logits before it. One inside the network is refused.
    fn softmax(&mut self, node: &NodeProto) -> Result<()> {
        if output(node)? != self.graph_output {
            return Err(err(format!("{} is supported only as the last op, computing the graph's output (it is left out: advlens reads logits)", node.op_type)));
        }
        self.dropped_softmax = Some(node.op_type.clone());
        self.alias(node)
    }

    fn constant_node(&mut self, node: &NodeProto) -> Result<()> {
        let out = node.output.first().ok_or_else(|| err("it has no output".into()))?.clone();
        let a = node.attribute.first().ok_or_else(|| err("it has no value".into()))?;
        let c = match a.name.as_str() {
            "value" => constant(a.t.as_ref().ok_or_else(|| err("its value is empty".into()))?)?,
            "value_float" => Const::floats(vec![], vec![a.f]),
            "value_floats" => Const::floats(vec![a.floats.len()], a.floats.clone()),
            "value_int" => Const::ints(vec![], vec![a.i]),
            "value_ints" => Const::ints(vec![a.ints.len()], a.ints.clone()),
            other => return Err(err(format!("a Constant given as `{other}` is not supported"))),
        };
        self.consts.insert(out, c);
        Ok(())
    }

}
