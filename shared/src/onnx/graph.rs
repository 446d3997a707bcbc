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
    let (input_name, [c, h, w]) = model_input(graph, &t.consts)?;
    t.values.insert(input_name, INPUT_NAME.to_string());
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
    provenance.extra.insert("imported_from".into(), serde_json::json!({ "format": "onnx", "opset": opset, "producer": producer }));
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

/// The one graph input that is not an initialiser: its name and `[C, H, W]`.
fn model_input(graph: &GraphProto, consts: &HashMap<String, Const>) -> Result<(String, [usize; 3])> {
    let inputs: Vec<_> = graph.input.iter().filter(|i| !consts.contains_key(&i.name)).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(err("the graph has no input".into())),
        many => return Err(err(format!("the graph has {} inputs ({}); advlens models take one image batch", many.len(), many.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")))),
    };
    let tensor = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).ok_or_else(|| err(format!("input `{}` is not a tensor", input.name)))?;
    if tensor.elem_type != super::proto::data_type::FLOAT {
        return Err(err(format!("input `{}` has element type {} (only float, 1, images are read)", input.name, tensor.elem_type)));
    }
    let dims = tensor.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    if dims.len() != 4 {
        return Err(err(format!("input `{}` has {} dimensions; an image batch has 4 (N, C, H, W)", input.name, dims.len())));
    }
    let fixed = |k: usize| dims[k].dim_value.filter(|&v| v > 0).and_then(|v| usize::try_from(v).ok());
    match (fixed(1), fixed(2), fixed(3)) {
        (Some(c), Some(h), Some(w)) if c > limits::MAX_CHANNELS || h > limits::MAX_SIDE || w > limits::MAX_SIDE => {
            Err(Error::TooLarge(format!("input `{}` is {c}x{h}x{w}: more than {} channels or {} pixels a side", input.name, limits::MAX_CHANNELS, limits::MAX_SIDE)))
        }
        (Some(c), Some(h), Some(w)) => Ok((input.name.clone(), [c, h, w])),
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
        match node.op_type.as_str() {
            "Constant" => self.constant_node(node),
            "Identity" | "Dropout" => {
                self.check_unused_outputs(node, 1)?;
                self.alias(node)
            }
            "Conv" => self.conv(index, node),
            "Relu" => self.layer(index, node, Op::Relu, vec![]),
            "Sigmoid" => self.layer(index, node, Op::Sigmoid, vec![]),
            "LeakyRelu" => self.layer(index, node, Op::LeakyRelu { alpha: attr_f(node, "alpha", 0.01) }, vec![]),
            "Concat" => self.concat(index, node),
            "HardSigmoid" => self.layer(index, node, Op::HardSigmoid { alpha: attr_f(node, "alpha", 0.2), beta: attr_f(node, "beta", 0.5) }, vec![]),
            "HardSwish" => self.layer(index, node, Op::HardSwish, vec![]),
            "Unsqueeze" => self.unsqueeze(node, opset),
            "Pad" => self.pad(node, opset),
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
            "Softmax" | "LogSoftmax" => self.alias(node),
            other => Err(err(format!(
                "op `{other}` is not supported{}; supported: {} (and, on constants only, {})",
                match other {
                    "ConvTranspose" => " yet (planned)",
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
        } else {
            let v = self.act(source)?;
            self.values.insert(out.clone(), v);
        }
        Ok(())
    }

    /// Adds a bundle node reading the first input of `node` (and the second for `Add`).
    fn push(&mut self, index: usize, node: &NodeProto, op: Op, inputs: Vec<String>, weights: Vec<(&str, Tensor)>) -> Result<String> {
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
        let out = node.output.first().ok_or_else(|| err("it has no output".into()))?;
        self.values.insert(out.clone(), name.clone());
        Ok(name)
    }

    fn layer(&mut self, index: usize, node: &NodeProto, op: Op, weights: Vec<(&str, Tensor)>) -> Result<()> {
        let x = self.act(node.input.first().ok_or_else(|| err("it has no input".into()))?)?;
        self.push(index, node, op, vec![x], weights).map(drop)
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

    /// `Clip(x, min, max)` with constant bounds (opset 11+); a clip with only a lower bound
    /// of 0 is a ReLU.
    fn clip(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let bound = |k: usize| -> Result<Option<f32>> {
            match node.input.get(k).filter(|b| !b.is_empty()) {
                Some(name) => match self.floats(name)?.1.as_slice() {
                    [v] => Ok(Some(*v)),
                    other => Err(err(format!("its bound `{name}` has {} values, not one", other.len()))),
                },
                None => Ok(None),
            }
        };
        match (bound(1)?, bound(2)?) {
            (Some(min), Some(max)) => self.layer(index, node, Op::Clip { min, max }, vec![]),
            (Some(min), None) if min == 0.0 => self.layer(index, node, Op::Relu, vec![]),
            (min, max) => Err(err(format!("a clip to [{min:?}, {max:?}] is supported only with both bounds (or a lower bound of 0)"))),
        }
    }

    fn conv(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let group = attr_i(node, "group", 1);
        let dilation = square(node, "dilations", 1)?;
        let (dims, w) = self.floats(node.input.get(1).ok_or_else(|| err("it has no weight".into()))?)?;
        let [co, ci, kh, kw] = dims[..] else { return Err(err(format!("weight dims {dims:?} are not [out, in, kh, kw]"))) };
        if kh != kw {
            return Err(err(format!("kernel {kh}x{kw} is not square")));
        }
        let stride = square(node, "strides", 1)?;
        let padding = match auto_pad(node).as_str() {
            "" | "NOTSET" => square(node, "pads", 0)?,
            "VALID" => 0,
            // "Same" padding is symmetric only when the stride is 1 and the dilated kernel's span
            // is odd (Keras' and TensorFlow's usual 3x3 / 5x5 convolutions).
            "SAME_UPPER" | "SAME_LOWER" if stride == 1 && (dilation * (kh.max(1) - 1)) % 2 == 0 => dilation * (kh.max(1) - 1) / 2,
            other => return Err(err(format!("auto_pad {other} with stride {stride} and kernel {kh} pads the sides unequally: export with explicit, symmetric pads"))),
        };
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => self.floats(b)?.1,
            None => vec![0.0; co],
        };
        let groups = usize::try_from(group).map_err(|_| err(format!("group {group} is not positive")))?;
        let in_channels = ci.checked_mul(groups).ok_or_else(|| err(format!("group {groups} is implausible")))?;
        let (x, extra) = self.padded_input(node)?;
        if let [c] = self.shapes[&x][..] {
            // A 1x1 convolution of a pooled [N, C, 1, 1] vector (a squeeze-and-excitation
            // block's layers) is a linear layer of the vector.
            if kh != 1 || padding + extra != 0 || groups != 1 || c != ci {
                return Err(err(format!("a {kh}x{kh} convolution (padding {padding}, group {groups}) of a pooled vector of {c} values is supported only as a plain 1x1 one")));
            }
            let op = Op::Linear { in_features: ci, out_features: co };
            return self.push(index, node, op, vec![x], vec![("weight", Tensor::new(vec![co, ci], w)?), ("bias", Tensor::new(vec![co], bias)?)]).map(drop);
        }
        let padding = padding.checked_add(extra).ok_or_else(|| err("its padding is implausible".into()))?;
        let op = Op::Conv2d { in_channels, out_channels: co, kernel: kh, stride, padding, groups, dilation };
        let weights = vec![("weight", Tensor::new(dims.clone(), w)?), ("bias", Tensor::new(vec![co], bias)?)];
        self.push(index, node, op, vec![x], weights).map(drop)
    }

    /// The layer output that `node`'s first input is, and the padding of a zero `Pad` between
    /// them (0 without one).
    fn padded_input(&mut self, node: &NodeProto) -> Result<(String, usize)> {
        let name = input(node, 0)?;
        match self.pads.get(name) {
            Some((source, padding)) => Ok((source.clone(), *padding)),
            None => Ok((self.act(name)?, 0)),
        }
    }

    /// A constant zero `Pad` of the spatial axes, equal on every side: remembered, and taken
    /// over by the `Conv` or `AveragePool` that reads it.
    fn pad(&mut self, node: &NodeProto, opset: i64) -> Result<()> {
        let mode = attr(node, "mode").map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(err(format!("mode {mode} is not supported; only zero (constant) padding is")));
        }
        let pads = if opset < 11 { attr_ints(node, "pads").unwrap_or_default() } else { self.ints(input(node, 1)?)? };
        if let Some(value) = node.input.get(2).filter(|v| !v.is_empty()) {
            if self.floats(value)?.1.iter().any(|&v| v != 0.0) {
                return Err(err("a padding value other than 0 is not supported".into()));
            }
        }
        if node.input.get(3).is_some_and(|a| !a.is_empty()) {
            return Err(err("a Pad with explicit axes is not supported: export with pads for all four axes".into()));
        }
        let [0, 0, top, left, 0, 0, bottom, right] = pads[..] else {
            return Err(err(format!("pads {pads:?} pad the batch or channel axes, or are not for an [N, C, H, W] tensor")));
        };
        if !(top == left && top == bottom && top == right && top >= 0) {
            return Err(err(format!("pads {pads:?} differ between sides; only equal padding on all four sides can be folded into the next layer")));
        }
        let padding = usize::try_from(top).map_err(|_| err(format!("pads {pads:?} are implausible")))?;
        let (source, before) = self.padded_input(node)?;
        let padding = padding.checked_add(before).filter(|&p| p <= limits::MAX_SIDE).ok_or_else(|| err(format!("pads {pads:?} are implausible")))?;
        self.pads.insert(output(node)?.to_string(), (source, padding));
        Ok(())
    }

    fn pool(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        self.check_unused_outputs(node, 1)?;
        if square(node, "dilations", 1)? != 1 {
            return Err(err("dilated pooling is not supported".into()));
        }
        if !matches!(auto_pad(node).as_str(), "" | "NOTSET" | "VALID") {
            return Err(err(format!("auto_pad {} is not supported for pooling: export with explicit pads", auto_pad(node))));
        }
        let kernel = square(node, "kernel_shape", 0)?;
        let (stride, padding) = (square(node, "strides", 1)?, square(node, "pads", 0)?);
        let max = node.op_type == "MaxPool";
        let (x, extra) = if max { (self.act(input(node, 0)?)?, 0) } else { self.padded_input(node)? };
        if attr_i(node, "ceil_mode", 0) != 0 {
            // Rounding the output size up adds a last, partial window, unless the windows
            // already tile the input exactly: then ceil_mode changes nothing and is accepted.
            let shape = &self.shapes[&x];
            if let [_, h, w] = shape[..] {
                let (floor_h, floor_w) = (pool_size(h, kernel, stride, padding, false), pool_size(w, kernel, stride, padding, false));
                let (ceil_h, ceil_w) = (pool_size(h, kernel, stride, padding, true), pool_size(w, kernel, stride, padding, true));
                if (floor_h, floor_w) != (ceil_h, ceil_w) {
                    return Err(err(format!(
                        "ceil_mode = 1 makes the output {ceil_h}x{ceil_w} instead of {floor_h}x{floor_w} on this {h}x{w} input (a last, partial window), which is not supported: export with ceil_mode=False or an input size the windows tile"
                    )));
                }
            }
        }
        let padding = padding.checked_add(extra).ok_or_else(|| err("its padding is implausible".into()))?;
        let op = if max {
            Op::MaxPool2d { kernel, stride, padding }
        } else {
            if padding > 0 && attr_i(node, "count_include_pad", 0) == 0 && extra < padding {
                return Err(err("average pooling that leaves padding out of the divisor (count_include_pad = 0) is not supported".into()));
            }
            Op::AvgPool2d { kernel, stride, padding }
        };
        self.push(index, node, op, vec![x], vec![]).map(drop)
    }

    /// Channels of two or more layer outputs stacked (axis 1, or -3 of an NCHW tensor).
    fn concat(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let axis = attr_i(node, "axis", 1);
        if axis != 1 && axis != -3 {
            return Err(err(format!("a Concat along axis {axis} is supported only along the channels (axis 1)")));
        }
        let inputs = node.input.iter().filter(|i| !i.is_empty()).map(|i| self.act(i)).collect::<Result<Vec<_>>>()?;
        match inputs.len() {
            0 => Err(err("it has no input".into())),
            1 => self.alias(node),
            n if n > crate::model::MAX_CONCAT_INPUTS => Err(err(format!("it joins {n} tensors (at most {})", crate::model::MAX_CONCAT_INPUTS))),
            _ => self.push(index, node, Op::Concat, inputs, vec![]).map(drop),
        }
    }

    fn reduce_mean(&mut self, index: usize, node: &NodeProto, opset: i64) -> Result<()> {
        let axes = match (attr_ints(node, "axes"), node.input.get(1).filter(|a| !a.is_empty())) {
            (Some(a), _) => a,
            (None, Some(input)) if opset >= 18 => self.ints(input)?,
            _ => return Err(err("a mean over all axes is not a layer".into())),
        };
        let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
        axes.sort_unstable();
        if axes != [2, 3] {
            return Err(err(format!("a mean over axes {axes:?} is supported only over H and W (a global average pool)")));
        }
        self.layer(index, node, Op::GlobalAvgPool, vec![])
    }

    fn batch_norm(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        self.check_unused_outputs(node, 1)?;
        if attr_i(node, "training_mode", 0) != 0 {
            return Err(err("batch norm in training mode: export the model in eval mode".into()));
        }
        let get = |k: usize| self.floats(node.input.get(k).ok_or_else(|| err("it lacks an input".into()))?);
        let (weight, bias, mean, var) = (get(1)?.1, get(2)?.1, get(3)?.1, get(4)?.1);
        let channels = weight.len();
        let t = |v: Vec<f32>| Tensor::new(vec![channels], v);
        let op = Op::BatchNorm2d { channels, eps: attr_f(node, "epsilon", 1e-5) };
        self.layer(index, node, op, vec![("weight", t(weight)?), ("bias", t(bias)?), ("running_mean", t(mean)?), ("running_var", t(var)?)])
    }

    fn flatten(&mut self, index: usize, node: &NodeProto, to_features: bool) -> Result<()> {
        if !to_features {
            return Err(err("only a flatten to [N, features] (axis 1) is supported".into()));
        }
        let x = self.act(input(node, 0)?)?;
        if self.shapes[&x].len() == 1 {
            // Already [features] per image (e.g. after a global average pool).
            return self.alias(node);
        }
        self.push(index, node, Op::Flatten, vec![x], vec![]).map(drop)
    }

    /// `Unsqueeze` of a per-channel vector `[N, C]` to `[N, C, 1, 1]`: the same values (the
    /// bundle's vectors broadcast over a map's pixels where they are multiplied).
    fn unsqueeze(&mut self, node: &NodeProto, opset: i64) -> Result<()> {
        let x = self.act(input(node, 0)?)?;
        let mut axes = if opset < 13 { attr_ints(node, "axes").unwrap_or_default() } else { self.ints(input(node, 1)?)? };
        axes.iter_mut().for_each(|a| *a = if *a < 0 { *a + 4 } else { *a });
        axes.sort_unstable();
        if self.shapes[&x].len() == 1 && axes == [2, 3] {
            return self.alias(node);
        }
        Err(err(format!("Unsqueeze of a {:?} output along axes {axes:?} is supported only from [N, C] to [N, C, 1, 1]", self.shapes[&x])))
    }

    fn reshape(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let x = self.act(node.input.first().ok_or_else(|| err("it has no input".into()))?)?;
        let target = self.ints(node.input.get(1).ok_or_else(|| err("it has no shape".into()))?)?;
        let per_image = &self.shapes[&x];
        // A vector [N, C] as [N, C, 1, 1] (or back): the same values.
        if let ([c], [_, tc, 1, 1]) = (per_image.as_slice(), target.as_slice()) {
            if *tc == *c as i64 || *tc == -1 {
                return self.alias(node);
            }
        }
        let features = per_image.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).and_then(|f| i64::try_from(f).ok()).ok_or_else(|| err("the input is too large".into()))?;
        let flat = match target[..] {
            [n, f] => (n == 0 || n == 1 || n == -1) && (f == -1 || f == features) && !(n == -1 && f == -1),
            _ => false,
        };
        let same = target.len() == per_image.len() + 1 && target[1..].iter().zip(per_image).all(|(&t, &s)| t == s as i64 || t == 0);
        if same {
            return self.alias(node);
        }
        if !flat {
            return Err(err(format!("Reshape to {target:?} is supported only as a flatten to [N, {features}]")));
        }
        self.flatten(index, node, true)
    }

    fn gemm(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        if attr_i(node, "transA", 0) != 0 {
            return Err(err("transA = 1 is not supported".into()));
        }
        let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
        let (dims, b) = self.floats(input(node, 1)?)?;
        let [r, c] = dims[..] else { return Err(err(format!("weight dims {dims:?} are not a matrix"))) };
        // The bundle's linear weight is [out, in].
        let (out, inp, mut weight) = if attr_i(node, "transB", 0) == 1 { (r, c, b) } else { (c, r, transpose(&b, r, c)) };
        weight.iter_mut().for_each(|v| *v *= alpha);
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(name) => broadcast(&self.floats(name)?.1, out)?.into_iter().map(|v| v * beta).collect(),
            None => vec![0.0; out],
        };
        let op = Op::Linear { in_features: inp, out_features: out };
        self.layer(index, node, op, vec![("weight", Tensor::new(vec![out, inp], weight)?), ("bias", Tensor::new(vec![out], bias)?)])
    }

    fn matmul(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let (dims, b) = self.floats(input(node, 1)?)?;
        let [inp, out] = dims[..] else { return Err(err(format!("a MatMul by {dims:?} is supported only with a constant matrix"))) };
        let op = Op::Linear { in_features: inp, out_features: out };
        let x = self.act(input(node, 0)?)?;
        let weights = vec![("weight", Tensor::new(vec![out, inp], transpose(&b, inp, out))?), ("bias", Tensor::new(vec![out], vec![0.0; out])?)];
        let name = self.push(index, node, op, vec![x], weights)?;
        if self.uses.get(output(node)?).copied() == Some(1) {
            self.open_bias.insert(name);
        }
        Ok(())
    }

    /// `Add` of two layers' outputs; otherwise an elementwise op with a constant, which is
    /// folded: into the input's normalisation, or into the bias of the `MatMul` before it.
    fn arithmetic(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let [a, b] = &node.input[..] else { return Err(err("it needs two inputs".into())) };
        let (a_const, b_const) = (self.consts.contains_key(a), self.consts.contains_key(b));
        if !a_const && !b_const {
            let (x, y) = (self.act(a)?, self.act(b)?);
            return match node.op_type.as_str() {
                "Add" if self.shapes[&x] == self.shapes[&y] => self.push(index, node, Op::Add, vec![x, y], vec![]).map(drop),
                "Add" => Err(err(format!("it adds shapes {:?} and {:?}; only equal shapes are supported", self.shapes[&x], self.shapes[&y]))),
                // A gate [C] times maps [C, H, W] (squeeze-and-excitation): the maps first.
                "Mul" if self.shapes[&x].len() < self.shapes[&y].len() => self.push(index, node, Op::Mul, vec![y, x], vec![]).map(drop),
                "Mul" => self.push(index, node, Op::Mul, vec![x, y], vec![]).map(drop),
                op => Err(err(format!("{op} of two layers' outputs is not supported (only Add and Mul)"))),
            };
        }
        let (value, constant, const_first) = if a_const { (b, a, true) } else { (a, b, false) };
        let x = self.act(value)?;
        let (_, k) = self.floats(constant)?;
        if x == INPUT_NAME && !self.input_read {
            return self.fold_normalisation(node, &k, const_first);
        }
        if node.op_type == "Add" && self.open_bias.remove(&x) {
            let key = format!("{x}.bias");
            let out = self.weights[&key].data().len();
            self.weights.insert(key, Tensor::new(vec![out], broadcast(&k, out)?)?);
            self.values.insert(output(node)?.to_string(), x);
            return Ok(());
        }
        Err(err(format!(
            "{} with a constant is supported only as the input's normalisation (before any layer) or as the bias after a MatMul",
            node.op_type
        )))
    }

    /// The graph's own normalisation of its input, composed into the bundle's mean and std:
    /// with x' = (x - mean) / std so far, `x' - k` has mean + k std, `x' / k` has std k, ...
    fn fold_normalisation(&mut self, node: &NodeProto, k: &[f32], const_first: bool) -> Result<()> {
        let channels = self.mean.len();
        let k = broadcast(k, channels)?;
        match (node.op_type.as_str(), const_first) {
            ("Sub", false) => self.mean.iter_mut().zip(&self.std).zip(&k).for_each(|((m, s), k)| *m += k * s),
            ("Add", _) => self.mean.iter_mut().zip(&self.std).zip(&k).for_each(|((m, s), k)| *m -= k * s),
            ("Div", false) => self.std.iter_mut().zip(&k).for_each(|(s, k)| *s *= k),
            ("Mul", _) => self.std.iter_mut().zip(&k).for_each(|(s, k)| *s /= k),
            (op, _) => return Err(err(format!("a constant {op} the input (constant first) is not a normalisation"))),
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || self.mean.iter().any(|m| !m.is_finite()) {
            return Err(err("the input normalisation it implies has a non-positive or non-finite std".into()));
        }
        self.values.insert(output(node)?.to_string(), INPUT_NAME.to_string());
        Ok(())
    }
}

/// A node's `auto_pad` attribute ("" when absent).
fn auto_pad(node: &NodeProto) -> String {
    attr(node, "auto_pad").map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_default()
}

/// Output size of a pooling window along one axis, with the output size rounded down or (ONNX's
/// and PyTorch's `ceil_mode`) up, where a last window may not start in the right padding; 0
/// when the window does not fit.
fn pool_size(size: usize, kernel: usize, stride: usize, padding: usize, ceil: bool) -> usize {
    let padded = size.saturating_add(padding.saturating_mul(2));
    if stride == 0 || kernel == 0 || padded < kernel {
        return 0;
    }
    let span = padded - kernel;
    let mut out = if ceil { span.div_ceil(stride) + 1 } else { span / stride + 1 };
    if ceil && (out - 1) * stride >= size + padding {
        out -= 1;
    }
    out
}

/// `m` (`rows x cols`, row-major) transposed.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = m[r * cols + c];
        }
    }
    out
}

/// A per-channel (or per-feature) constant of `n` values, or one value repeated.
fn broadcast(k: &[f32], n: usize) -> Result<Vec<f32>> {
    match k.len() {
        1 => Ok(vec![k[0]; n]),
        len if len == n => Ok(k.to_vec()),
        len => Err(err(format!("a constant of {len} values does not broadcast to {n} channels or features"))),
    }
}
