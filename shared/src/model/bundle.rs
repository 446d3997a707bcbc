//! A loaded, validated model: its [`ModelSpec`] plus its weights.
//!
//! Loading is validating: a [`Bundle`] that exists is internally consistent, so the
//! engines never meet a missing tensor, a wrong shape or a dangling node.

use std::collections::{HashMap, HashSet};

use safetensors::{Dtype, SafeTensors};

use super::spec::{ModelSpec, Op, FORMAT_NAME, FORMAT_VERSION, INPUT_NAME};
use crate::{Error, Result, Tensor};

/// File name of the description inside a bundle directory.
pub const SPEC_FILE: &str = "model.json";
/// File name of the weights inside a bundle directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Metadata key of the description in the single-file form.
pub const SINGLE_FILE_KEY: &str = "advlens.model";
/// Metadata key of the optional sample images (`samples.json`) in the single-file form.
pub const SINGLE_FILE_SAMPLES_KEY: &str = "advlens.samples";

/// Caps that keep a hostile file from exhausting memory.
pub mod limits {
    /// Largest input side in pixels.
    pub const MAX_SIDE: usize = 4096;
    /// Most input channels.
    pub const MAX_CHANNELS: usize = 64;
    /// Most nodes in a graph.
    pub const MAX_NODES: usize = 4096;
    /// Most values in any one activation of one image.
    pub const MAX_ACTIVATION: usize = 1 << 26;
    /// Most weight values in total (1 GiB of f32).
    pub const MAX_WEIGHTS: usize = 1 << 28;
    /// Most classes.
    pub const MAX_CLASSES: usize = 100_000;
    /// Largest weight magnitude. Trained weights stay far below it; finite values near f32's
    /// maximum (3e38) overflow to infinity in the first layer and made predictions "NaN%".
    pub const MAX_ABS_WEIGHT: f32 = 1e15;
}

/// A model that passed validation.
#[derive(Clone, Debug)]
pub struct Bundle {
    spec: ModelSpec,
    weights: HashMap<String, Tensor>,
    /// Per-image output shape of every node (and of the input), without the batch axis.
    shapes: HashMap<String, Vec<usize>>,
}

impl Bundle {
    /// Validates a description and its weights and builds a bundle from them.
    pub fn new(spec: ModelSpec, weights: HashMap<String, Tensor>) -> Result<Self> {
        let shapes = check_graph(&spec)?;
        check_weights(&spec, &weights)?;
        Ok(Self { spec, weights, shapes })
    }

    /// Reads a bundle from the bytes of `model.json` and `weights.safetensors`
    /// (the browser fetches both; natively see [`Bundle::load`]).
    pub fn from_bytes(spec_json: &[u8], weights: &[u8]) -> Result<Self> {
        let spec = parse_spec(spec_json)?;
        let weights = parse_weights(weights)?;
        Self::new(spec, weights)
    }

    /// Reads a bundle directory holding [`SPEC_FILE`] and [`WEIGHTS_FILE`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| Error::Io { path: path.display().to_string(), source })
        };
        Self::from_bytes(&read(SPEC_FILE)?, &read(WEIGHTS_FILE)?)
    }

    /// Writes the bundle as a directory holding [`SPEC_FILE`] and [`WEIGHTS_FILE`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, dir: impl AsRef<std::path::Path>) -> Result<()> {
        let dir = dir.as_ref();
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (spec, weights) = self.to_bytes()?;
        let spec_path = dir.join(SPEC_FILE);
        std::fs::write(&spec_path, spec).map_err(io(&spec_path))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        std::fs::write(&weights_path, weights).map_err(io(&weights_path))?;
        Ok(())
    }

    /// The two files of the bundle: pretty JSON and safetensors.
    pub fn to_bytes(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut spec = serde_json::to_vec_pretty(&self.spec)
            .map_err(|source| Error::SpecJson { version: FORMAT_VERSION, source })?;
        spec.push(b'\n');
        Ok((spec, self.weights_bytes(None)?))
    }

    /// The single-file form: one safetensors file whose metadata holds the description under
    /// [`SINGLE_FILE_KEY`].
    pub fn to_single_file(&self) -> Result<Vec<u8>> {
        let spec = serde_json::to_string(&self.spec).map_err(|source| Error::SpecJson { version: FORMAT_VERSION, source })?;
        self.weights_bytes(Some(HashMap::from([(SINGLE_FILE_KEY.to_string(), spec)])))
    }

    /// The single-file form with the bundle's sample images (`samples.json`'s bytes) in it too:
    /// one file that the explorer opens with something to show.
    pub fn to_single_file_with_samples(&self, samples_json: &[u8]) -> Result<Vec<u8>> {
        crate::model::SampleSet::from_json(samples_json)?;
        let spec = serde_json::to_string(&self.spec).map_err(|source| Error::SpecJson { version: FORMAT_VERSION, source })?;
        let samples = String::from_utf8(samples_json.to_vec()).map_err(|e| Error::Samples(format!("not UTF-8: {e}")))?;
        self.weights_bytes(Some(HashMap::from([(SINGLE_FILE_KEY.to_string(), spec), (SINGLE_FILE_SAMPLES_KEY.to_string(), samples)])))
    }

    /// The description inside a single file, parsed and checked but not built: what a reader
    /// with limits of its own looks at before committing memory to the weights.
    pub fn single_file_spec(bytes: &[u8]) -> Result<ModelSpec> {
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| match e {
            safetensors::SafeTensorError::MetadataIncompleteBuffer => Error::Truncated,
            e => Error::Weights(format!("not a safetensors file ({e})")),
        })?;
        let spec = metadata.metadata().as_ref().and_then(|m| m.get(SINGLE_FILE_KEY)).ok_or_else(|| {
            Error::Weights(format!("no `{SINGLE_FILE_KEY}` entry in the safetensors metadata: this is a plain weights file, load it with its {SPEC_FILE}"))
        })?;
        parse_spec(spec.as_bytes())
    }

    /// The sample images of a single-file bundle, when it holds some (`samples.json`'s bytes).
    pub fn single_file_samples(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| Error::Weights(e.to_string()))?;
        Ok(metadata.metadata().as_ref().and_then(|m| m.get(SINGLE_FILE_SAMPLES_KEY)).map(|s| s.as_bytes().to_vec()))
    }

    /// Reads the single-file form written by [`Bundle::to_single_file`].
    pub fn from_single_file(bytes: &[u8]) -> Result<Self> {
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| match e {
            safetensors::SafeTensorError::MetadataIncompleteBuffer => Error::Truncated,
            e => Error::Weights(e.to_string()),
        })?;
        let spec = metadata.metadata().as_ref().and_then(|m| m.get(SINGLE_FILE_KEY)).ok_or_else(|| {
            Error::Weights(format!(
                "no `{SINGLE_FILE_KEY}` entry in the safetensors metadata: this is a plain weights file, load it with its {SPEC_FILE}"
            ))
        })?;
        Self::from_bytes(spec.as_bytes(), bytes)
    }

    fn weights_bytes(&self, metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
        let mut names: Vec<&String> = self.weights.keys().collect();
        names.sort();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = names
            .into_iter()
            .map(|name| {
                let t = &self.weights[name];
                let data = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), t.shape().to_vec(), data)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, shape, data)| {
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| Error::Weights(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, metadata).map_err(|e| Error::Weights(e.to_string()))
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The weight tensor `name` (`<node>.weight` or `<node>.bias`); present for every node that needs it.
    pub fn weight(&self, name: &str) -> &Tensor {
        &self.weights[name]
    }

    pub fn weights(&self) -> &HashMap<String, Tensor> {
        &self.weights
    }

    /// Per-image output shape of node `name` (`"input"` for the input), without the batch axis.
    pub fn shape_of(&self, name: &str) -> Option<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice)
    }

    /// Shape of one input image: `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        let i = &self.spec.input;
        [i.channels, i.height, i.width]
    }

    pub fn classes(&self) -> &[String] {
        &self.spec.classes
    }
}

/// Parses `model.json`, checking format and version before the fields so that a file from
/// another version gets a version error rather than a confusing field error.
pub fn parse_spec(bytes: &[u8]) -> Result<ModelSpec> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| Error::SpecJson { version: FORMAT_VERSION, source })?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("<missing>");
    if format != FORMAT_NAME {
        return Err(Error::WrongFormat { expected: FORMAT_NAME, found: format.to_string() });
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(Error::UnsupportedVersion { found: v.min(u64::from(u32::MAX)) as u32, supported: FORMAT_VERSION })
        }
        None => return Err(Error::Graph("field `version` is missing or not a number".into())),
    }
    serde_json::from_value(value).map_err(|source| Error::SpecJson { version: FORMAT_VERSION, source })
}

/// Parses `weights.safetensors` into f32 tensors; every tensor must be F32 and finite.
pub fn parse_weights(bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| weights_error(bytes, e))?;
    let mut out = HashMap::new();
    let mut total = 0usize;
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::Tensor { name, problem: format!("dtype is {:?}, expected F32", view.dtype()) });
        }
        total = total.saturating_add(view.data().len() / 4);
        if total > limits::MAX_WEIGHTS {
            return Err(Error::TooLarge(format!("more than {} weight values", limits::MAX_WEIGHTS)));
        }
        let data: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Tensor { name, problem: format!("value {} at index {i} is not finite", data[i]) });
        }
        let tensor = Tensor::new(view.shape().to_vec(), data).map_err(|_| Error::Tensor {
            name: name.clone(),
            problem: "data length does not match its shape".into(),
        })?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// Why `bytes` are not a safetensors file, naming the tensor at fault when there is one:
/// the `safetensors` crate reports data past the end of the file, or a tensor whose byte range
/// disagrees with its shape, without saying which tensor.
fn weights_error(bytes: &[u8], e: safetensors::SafeTensorError) -> Error {
    use safetensors::SafeTensorError as E;
    if !matches!(e, E::MetadataIncompleteBuffer | E::TensorInvalidInfo) {
        return Error::Weights(e.to_string());
    }
    #[derive(serde::Deserialize)]
    struct Info {
        dtype: String,
        shape: Vec<usize>,
        data_offsets: (usize, usize),
    }
    let Some(header_len) = bytes.get(..8).and_then(|n| usize::try_from(u64::from_le_bytes(n.try_into().ok()?)).ok()) else {
        return Error::Weights(e.to_string());
    };
    let header = bytes
        .get(8..8usize.saturating_add(header_len))
        .and_then(|h| serde_json::from_slice::<HashMap<String, serde_json::Value>>(h).ok());
    let Some(header) = header else { return Error::Weights(e.to_string()) };
    let data_len = bytes.len() - 8 - header_len;
    let mut infos: Vec<(String, Info)> =
        header.into_iter().filter(|(k, _)| k != "__metadata__").filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?))).collect();
    infos.sort_by_key(|(_, i)| i.data_offsets);
    for (name, info) in &infos {
        let (start, end) = info.data_offsets;
        if end > data_len {
            return Error::Tensor {
                name: name.clone(),
                problem: format!("its data (bytes {start}..{end}) runs past the end of the file's {data_len} data bytes: the file is cut off or damaged; copy or export it again"),
            };
        }
        let bytes_per = match info.dtype.as_str() {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            _ => 1,
        };
        let needed = info.shape.iter().try_fold(bytes_per, |a: usize, &d| a.checked_mul(d));
        if needed != end.checked_sub(start) {
            return Error::Tensor {
                name: name.clone(),
                problem: format!("its byte range {start}..{end} does not hold a {} tensor of shape {:?}: the file is damaged", info.dtype, info.shape),
            };
        }
    }
    let used = infos.iter().map(|(_, i)| i.data_offsets.1).max().unwrap_or(0);
    if used < data_len {
        return Error::Weights(format!("{} bytes follow the last tensor: the file is damaged or two files were joined", data_len - used));
    }
    Error::Weights(e.to_string())
}

/// Validates a graph without weights (names, order, op parameters, caps, hierarchy) and returns
/// every node's output shape `[C, H, W]` or `[F]` (batch dimension left out). Architecture
/// builders use it to reject a graph that does not fit its input size.
pub fn check_spec(spec: &ModelSpec) -> Result<HashMap<String, Vec<usize>>> {
    check_graph(spec)
}

/// Checks the graph (names, order, op parameters, caps) and infers every node's output shape.
fn check_graph(spec: &ModelSpec) -> Result<HashMap<String, Vec<usize>>> {
    let input = &spec.input;
    if input.channels == 0 || input.height == 0 || input.width == 0 {
        return Err(Error::Graph("input dimensions must be positive".into()));
    }
    if input.channels > limits::MAX_CHANNELS || input.height > limits::MAX_SIDE || input.width > limits::MAX_SIDE {
        return Err(Error::TooLarge(format!(
            "input {}x{}x{} exceeds {} channels or {} pixels a side",
            input.channels,
            input.height,
            input.width,
            limits::MAX_CHANNELS,
            limits::MAX_SIDE
        )));
    }
    if input.mean.len() != input.channels || input.std.len() != input.channels {
        return Err(Error::Graph(format!(
            "input mean and std need {} values (one per channel), found {} and {}",
            input.channels,
            input.mean.len(),
            input.std.len()
        )));
    }
    if input.mean.iter().any(|m| !m.is_finite()) || input.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(Error::Graph("input mean must be finite and std positive".into()));
    }
    if spec.nodes.is_empty() {
        return Err(Error::Graph("the graph has no nodes".into()));
    }
    if spec.nodes.len() > limits::MAX_NODES {
        return Err(Error::TooLarge(format!("{} nodes (at most {})", spec.nodes.len(), limits::MAX_NODES)));
    }
    for (what, text) in [("model name", &spec.name), ("output", &spec.output)]
        .into_iter()
        .chain(spec.classes.iter().map(|c| ("class name", c)))
        .chain(spec.nodes.iter().map(|n| ("node name", &n.name)))
        .chain(spec.hierarchy.iter().flat_map(|(k, v)| [("hierarchy entry", k), ("hierarchy entry", v)]))
    {
        check_printable(what, text)?;
    }
    if spec.classes.is_empty() || spec.classes.len() > limits::MAX_CLASSES {
        return Err(Error::Graph(format!("{} classes (need 1 to {})", spec.classes.len(), limits::MAX_CLASSES)));
    }

    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    shapes.insert(INPUT_NAME.to_string(), vec![input.channels, input.height, input.width]);
    let mut weight_total = 0usize;
    for node in &spec.nodes {
        let name = &node.name;
        if name.is_empty() || shapes.contains_key(name) {
            return Err(Error::Graph(format!("node name `{name}` is empty, reserved or used twice")));
        }
        if !node.op.arity().contains(&node.inputs.len()) {
            let arity = node.op.arity();
            let expected = if arity.start() == arity.end() { arity.start().to_string() } else { format!("{} to {}", arity.start(), arity.end()) };
            return Err(Error::Graph(format!("node `{name}` ({}) takes {expected} input(s), found {}", node.op.kind(), node.inputs.len())));
        }
        let mut in_shapes = Vec::with_capacity(node.inputs.len());
        for source in &node.inputs {
            match shapes.get(source) {
                Some(shape) => in_shapes.push(shape.as_slice()),
                None => {
                    return Err(Error::Graph(format!(
                        "node `{name}` reads `{source}`, which is not the input nor a node defined before it"
                    )))
                }
            }
        }
        let out_shape = infer_shape(name, &node.op, &in_shapes)?;
        let size = checked_product(&out_shape);
        if size.is_none_or(|n| n > limits::MAX_ACTIVATION) {
            return Err(Error::TooLarge(format!("node `{name}` output {out_shape:?} is too large")));
        }
        for (w, shape) in node.op.weight_shapes(name) {
            let n = checked_product(&shape).ok_or_else(|| Error::TooLarge(format!("tensor `{w}` {shape:?}")))?;
            weight_total = weight_total.saturating_add(n);
        }
        if weight_total > limits::MAX_WEIGHTS {
            return Err(Error::TooLarge(format!("more than {} weight values", limits::MAX_WEIGHTS)));
        }
        shapes.insert(name.clone(), out_shape);
    }
    check_hierarchy(spec)?;
    let Some(out) = shapes.get(&spec.output) else {
        return Err(Error::Graph(format!("output node `{}` does not exist", spec.output)));
    };
    if out.as_slice() != [spec.classes.len()] {
        return Err(Error::Graph(format!(
            "output `{}` has shape {out:?} but there are {} classes",
            spec.output,
            spec.classes.len()
        )));
    }
    Ok(shapes)
}

/// The last activation (ReLU, ReLU6, sigmoid, leaky ReLU) whose output is a feature map
/// `[C, H, W]`: the default layer that `analyze`, `trace` and the consistent loss look at.
pub fn last_feature_activation(spec: &ModelSpec) -> Result<Option<String>> {
    let shapes = check_spec(spec)?;
    Ok(spec.nodes.iter().filter(|n| n.op.is_activation() && shapes[&n.name].len() == 3).last().map(|n| n.name.clone()))
}

/// Every class names a distinct string, and following parents never loops.
fn check_hierarchy(spec: &ModelSpec) -> Result<()> {
    let mut seen = HashSet::new();
    if let Some(dup) = spec.classes.iter().find(|c| !seen.insert(c.as_str())) {
        return Err(Error::Graph(format!("class `{dup}` is listed twice")));
    }
    for start in spec.hierarchy.keys() {
        let mut at = start;
        for _ in 0..=spec.hierarchy.len() {
            match spec.hierarchy.get(at) {
                Some(parent) if parent == start => {
                    return Err(Error::Graph(format!("the class hierarchy has a cycle through `{start}`")))
                }
                Some(parent) => at = parent,
                None => break,
            }
        }
    }
    Ok(())
}

/// Names are shown in terminals and pages: a newline or an ANSI escape in a class name would
/// fake lines of output, so names with control characters are refused (shown escaped).
pub fn check_printable(what: &str, text: &str) -> Result<()> {
    if text.chars().any(char::is_control) {
        return Err(Error::Graph(format!("{what} {text:?} contains control characters (newlines, escapes): rename it")));
    }
    Ok(())
}

fn checked_product(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Output size of a sliding window of `kernel` taps `dilation` apart, or `None` when the window
/// does not fit.
pub(crate) fn window_out(size: usize, kernel: usize, stride: usize, padding: usize, dilation: usize) -> Option<usize> {
    let padded = size.checked_add(padding.checked_mul(2)?)?;
    let span = kernel.checked_sub(1)?.checked_mul(dilation)?.checked_add(1)?;
    if kernel == 0 || stride == 0 || dilation == 0 || padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

/// The per-image output shape of `op` reading inputs of per-image shapes `inputs` (as many as
/// the op's arity, which the caller has checked).
pub(crate) fn infer_shape(name: &str, op: &Op, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    let bad = |why: String| Error::Graph(format!("node `{name}` ({}): {why}", op.kind()));
    let input = inputs[0];
    let chw = || match *input {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(bad(format!("needs a [C,H,W] input, got {input:?}"))),
    };
    match *op {
        Op::Conv2d { in_channels, out_channels, kernel, stride, padding, groups, dilation } => {
            let (c, h, w) = chw()?;
            if c != in_channels {
                return Err(bad(format!("in_channels is {in_channels} but its input has {c} channels")));
            }
            if out_channels == 0 {
                return Err(bad("out_channels must be positive".into()));
            }
            if groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
                return Err(bad(format!("groups {groups} must divide in_channels {in_channels} and out_channels {out_channels}")));
            }
            if dilation > limits::MAX_SIDE {
                return Err(bad(format!("dilation {dilation} is implausible")));
            }
            let out = |s| window_out(s, kernel, stride, padding, dilation);
            match (out(h), out(w)) {
                (Some(oh), Some(ow)) => Ok(vec![out_channels, oh, ow]),
                _ => Err(bad(format!("kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation} do not fit a {h}x{w} input"))),
            }
        }
        Op::ConvTranspose2d { in_channels, out_channels, kernel, stride, padding, output_padding, groups, dilation } => {
            let (c, h, w) = chw()?;
            if c != in_channels {
                return Err(bad(format!("in_channels is {in_channels} but its input has {c} channels")));
            }
            if out_channels == 0 || kernel == 0 || stride == 0 || dilation == 0 {
                return Err(bad("out_channels, kernel, stride and dilation must be positive".into()));
            }
            if groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
                return Err(bad(format!("groups {groups} must divide in_channels {in_channels} and out_channels {out_channels}")));
            }
            if output_padding >= stride {
                return Err(bad(format!("output_padding {output_padding} must be less than the stride {stride}")));
            }
            if [kernel, stride, padding, dilation].iter().any(|&v| v > limits::MAX_SIDE) {
                return Err(bad(format!("kernel {kernel}, stride {stride}, padding {padding} or dilation {dilation} is implausible")));
            }
            // (H - 1) s + d (k - 1) + output_padding + 1 - 2p, without overflow or underflow.
            let out = |s: usize| {
                s.checked_sub(1)?
                    .checked_mul(stride)?
                    .checked_add(dilation.checked_mul(kernel - 1)?)?
                    .checked_add(output_padding + 1)?
                    .checked_sub(padding.checked_mul(2)?)
                    .filter(|&o| o > 0)
            };
            match (out(h), out(w)) {
                (Some(oh), Some(ow)) => Ok(vec![out_channels, oh, ow]),
                _ => Err(bad(format!("kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation} leave no output of a {h}x{w} input"))),
            }
        }
        Op::MaxPool2d { kernel, stride, padding } | Op::AvgPool2d { kernel, stride, padding } => {
            let (c, h, w) = chw()?;
            // `padding * 2 > kernel`, without overflowing on a hostile padding.
            if padding > kernel / 2 {
                return Err(bad(format!("padding {padding} is more than half the kernel {kernel}")));
            }
            let out = |s| window_out(s, kernel, stride, padding, 1);
            match (out(h), out(w)) {
                (Some(oh), Some(ow)) => Ok(vec![c, oh, ow]),
                _ => Err(bad(format!("kernel {kernel}, stride {stride}, padding {padding} do not fit a {h}x{w} input"))),
            }
        }
        Op::Flatten => Ok(vec![checked_product(input).ok_or_else(|| bad("input too large".into()))?]),
        Op::Linear { in_features, out_features } => match *input {
            [n] if n == in_features && out_features > 0 => Ok(vec![out_features]),
            _ => Err(bad(format!("takes [{in_features}] and gives {out_features} > 0 features, but its input is {input:?}"))),
        },
        // Both normalise each channel of a map; instance norm over each image's own statistics.
        Op::BatchNorm2d { channels, eps } | Op::InstanceNorm { channels, eps } => {
            let (c, _, _) = chw()?;
            if c != channels {
                return Err(bad(format!("channels is {channels} but its input has {c}")));
            }
            if !(eps.is_finite() && eps > 0.0) {
                return Err(bad(format!("eps must be positive, got {eps}")));
            }
            Ok(input.to_vec())
        }
        Op::GlobalAvgPool => {
            let (c, _, _) = chw()?;
            Ok(vec![c])
        }
        Op::Clip { min, max } => {
            if !(min.is_finite() && max.is_finite() && min < max) {
                return Err(bad(format!("min {min} must be below max {max}, both finite")));
            }
            Ok(input.to_vec())
        }
        Op::LeakyRelu { alpha } => {
            if !alpha.is_finite() {
                return Err(bad(format!("alpha {alpha} must be finite")));
            }
            Ok(input.to_vec())
        }
        Op::Add => match inputs {
            [a, b] if a == b => Ok(a.to_vec()),
            _ => Err(bad(format!("inputs have shapes {inputs:?}; a sum needs equal shapes"))),
        },
        Op::Concat => {
            let (_, h, w) = chw()?;
            let mut channels = 0usize;
            for shape in inputs {
                match **shape {
                    [c, ih, iw] if [ih, iw] == [h, w] => channels = channels.saturating_add(c),
                    _ => return Err(bad(format!("inputs have shapes {inputs:?}; concatenating channels needs [C, H, W] inputs of one height and width"))),
                }
            }
            Ok(vec![channels, h, w])
        }
        Op::HardSigmoid { alpha, beta } => {
            if !(alpha.is_finite() && beta.is_finite()) {
                return Err(bad(format!("alpha {alpha} and beta {beta} must be finite")));
            }
            Ok(input.to_vec())
        }
        Op::Mul => match inputs {
            [a, b] if a == b => Ok(a.to_vec()),
            [a @ [c, _, _], [k]] if c == k => Ok(a.to_vec()),
            _ => Err(bad(format!("inputs have shapes {inputs:?}; a product needs equal shapes, or a [C, H, W] map times a [C] vector"))),
        },
        Op::Upsample2d { scale } | Op::ResizeBilinear { scale, .. } => {
            let (c, h, w) = chw()?;
            if scale == 0 || scale > limits::MAX_SIDE {
                return Err(bad(format!("scale {scale} must be a positive integer (at most {})", limits::MAX_SIDE)));
            }
            Ok(vec![c, h.saturating_mul(scale), w.saturating_mul(scale)])
        }
        Op::SliceChannels { start, end } => {
            let Some((&c, rest)) = input.split_first() else {
                return Err(bad("its input has no channel axis to slice".into()));
            };
            if !(start < end && end <= c) {
                return Err(bad(format!("channels {start}..{end} must be a non-empty range within its input's {c}")));
            }
            Ok([&[end - start][..], rest].concat())
        }
        Op::Pad2d { top, left, bottom, right } => {
            let (c, h, w) = chw()?;
            Ok(vec![c, h.saturating_add(top).saturating_add(bottom), w.saturating_add(left).saturating_add(right)])
        }
        Op::ChannelNorm { channels, eps } => {
            let c = input.first().copied().unwrap_or(0);
            if !(input.len() == 1 || input.len() == 3) || c != channels {
                return Err(bad(format!("takes [{channels}, H, W] or [{channels}], but its input is {input:?}")));
            }
            if !(eps.is_finite() && eps > 0.0) {
                return Err(bad(format!("eps must be positive, got {eps}")));
            }
            Ok(input.to_vec())
        }
        Op::Relu | Op::Sigmoid | Op::HardSwish | Op::Gelu | Op::Dropout => Ok(input.to_vec()),
    }
}

/// Every tensor the graph needs is present with its exact shape, and nothing else is.
fn check_weights(spec: &ModelSpec, weights: &HashMap<String, Tensor>) -> Result<()> {
    let mut expected = HashSet::new();
    for node in &spec.nodes {
        for (name, shape) in node.op.weight_shapes(&node.name) {
            match weights.get(&name) {
                None => {
                    return Err(Error::Tensor { name, problem: format!("missing (node `{}` needs {shape:?})", node.name) })
                }
                Some(t) if t.shape() != shape.as_slice() => {
                    return Err(Error::Tensor {
                        name,
                        problem: format!("shape is {:?}, node `{}` needs {shape:?}", t.shape(), node.name),
                    })
                }
                Some(t) => {
                    if let Some(i) = t.data().iter().position(|v| !v.is_finite()) {
                        return Err(Error::Tensor { name, problem: format!("value at index {i} is not finite") });
                    }
                    if let Some(i) = t.data().iter().position(|v| v.abs() > limits::MAX_ABS_WEIGHT) {
                        return Err(Error::Tensor {
                            name,
                            problem: format!("value {:e} at index {i} is beyond ±{:e}: it would overflow float32 in the forward pass", t.data()[i], limits::MAX_ABS_WEIGHT),
                        });
                    }
                    if name.ends_with(".running_var") && t.data().iter().any(|&v| v < 0.0) {
                        return Err(Error::Tensor { name, problem: "a variance is negative".into() });
                    }
                }
            }
            expected.insert(name);
        }
    }
    let mut extra: Vec<&String> = weights.keys().filter(|k| !expected.contains(*k)).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(Error::Tensor { name: (*name).clone(), problem: "not used by any node of the graph".into() });
    }
    Ok(())
}
