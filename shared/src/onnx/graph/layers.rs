//! The layer ops of the ONNX reader: one method per ONNX op (or family) that becomes a bundle
//! layer or folds into one (`Pad` into the next convolution, a `MatMul`'s `Add` into its bias, a
//! leading `Sub` / `Div` into the input's normalisation). The bookkeeping they share — values,
//! shapes, fresh names — is in the parent module.

use super::layout::hwc_columns_to_chw;
use super::{attr, attr_f, attr_i, attr_ints, err, input, output, square, Const, Translator};
use crate::model::{limits, Op, INPUT_NAME};
use crate::onnx::proto::NodeProto;
use crate::{Result, Tensor};

impl Translator {
    /// `Clip(x, min, max)` with constant bounds (opset 11+); a clip with only a lower bound
    /// of 0 is a ReLU.
    pub(super) fn clip(&mut self, index: usize, node: &NodeProto) -> Result<()> {
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

    pub(super) fn conv(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let group = attr_i(node, "group", 1);
        let dilation = square(node, "dilations", 1)?;
        let (dims, w) = self.floats(node.input.get(1).ok_or_else(|| err("it has no weight".into()))?)?;
        let [co, ci, kh, kw] = dims[..] else { return Err(err(format!("weight dims {dims:?} are not [out, in, kh, kw]"))) };
        if kh != kw {
            return Err(err(format!("kernel {kh}x{kw} is not square")));
        }
        let stride = square(node, "strides", 1)?;
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => self.floats(b)?.1,
            None => vec![0.0; co],
        };
        let groups = usize::try_from(group).map_err(|_| err(format!("group {group} is not positive")))?;
        let in_channels = ci.checked_mul(groups).ok_or_else(|| err(format!("group {groups} is implausible")))?;
        let (x, extra) = self.padded_input(node)?;
        let sides = conv_padding(node, &self.shapes[&x], kh, stride, dilation)?;
        if let [c] = self.shapes[&x][..] {
            // A 1x1 convolution of a pooled [N, C, 1, 1] vector (a squeeze-and-excitation
            // block's layers) is a linear layer of the vector.
            if kh != 1 || sides != [0; 4] || extra != 0 || groups != 1 || c != ci {
                let padding = sides.iter().max().copied().unwrap_or(0) + extra;
                return Err(err(format!("a {kh}x{kh} convolution (padding {padding}, group {groups}) of a pooled vector of {c} values is supported only as a plain 1x1 one")));
            }
            let op = Op::Linear { in_features: ci, out_features: co };
            return self.push(index, node, op, vec![x], vec![("weight", Tensor::new(vec![co, ci], w)?), ("bias", Tensor::new(vec![co], bias)?)]).map(drop);
        }
        let [top, left, bottom, right] = sides.map(|s| s.checked_add(extra).filter(|&p| p <= limits::MAX_SIDE));
        let (Some(top), Some(left), Some(bottom), Some(right)) = (top, left, bottom, right) else {
            return Err(err("its padding is implausible".into()));
        };
        let (x, padding) = if top == left && top == bottom && top == right {
            (x, top)
        } else {
            // Unequal sides (Keras's `same` at stride 2, SAME_UPPER): an explicit zero-padding
            // layer, then the convolution without padding.
            (self.push_inner(index, node, Op::Pad2d { top, left, bottom, right }, vec![x], vec![])?, 0)
        };
        let op = Op::Conv2d { in_channels, out_channels: co, kernel: kh, stride, padding, groups, dilation };
        let weights = vec![("weight", Tensor::new(dims.clone(), w)?), ("bias", Tensor::new(vec![co], bias)?)];
        self.push(index, node, op, vec![x], weights).map(drop)
    }

    /// `ConvTranspose` with square kernels, equal padding on all sides and no `output_shape`
    /// (export with explicit pads and output_padding instead).
    pub(super) fn conv_transpose(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        if attr(node, "output_shape").is_some() {
            return Err(err("output_shape is not supported: export with explicit pads and output_padding".into()));
        }
        if !matches!(auto_pad(node).as_str(), "" | "NOTSET" | "VALID") {
            return Err(err(format!("auto_pad {} is not supported for ConvTranspose: export with explicit pads", auto_pad(node))));
        }
        let groups = usize::try_from(attr_i(node, "group", 1)).ok().filter(|&g| g > 0).ok_or_else(|| err("group is not positive".into()))?;
        let (dims, w) = self.floats(node.input.get(1).ok_or_else(|| err("it has no weight".into()))?)?;
        let [ci, co_per_group, kh, kw] = dims[..] else { return Err(err(format!("weight dims {dims:?} are not [in, out / group, kh, kw]"))) };
        if kh != kw {
            return Err(err(format!("kernel {kh}x{kw} is not square")));
        }
        let out_channels = co_per_group.checked_mul(groups).ok_or_else(|| err(format!("group {groups} is implausible")))?;
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => self.floats(b)?.1,
            None => vec![0.0; out_channels],
        };
        let padding = if auto_pad(node) == "VALID" { 0 } else { square(node, "pads", 0)? };
        let op = Op::ConvTranspose2d {
            in_channels: ci,
            out_channels,
            kernel: kh,
            stride: square(node, "strides", 1)?,
            padding,
            output_padding: square(node, "output_padding", 0)?,
            groups,
            dilation: square(node, "dilations", 1)?,
        };
        let weights = vec![("weight", Tensor::new(dims.clone(), w)?), ("bias", Tensor::new(vec![out_channels], bias)?)];
        self.layer(index, node, op, weights)
    }

    /// `Resize` (or the older `Upsample`) by one integer factor on both spatial axes. In nearest
    /// mode, the `asymmetric` and the half-pixel coordinate modes pick the same source pixel
    /// `i / s` whatever the rounding (no ties arise), so all of them read as the bundle's
    /// `upsample2d`; in linear mode, half-pixel centres and aligned corners are a
    /// `resize_bilinear` layer.
    pub(super) fn resize(&mut self, index: usize, node: &NodeProto, opset: i64) -> Result<()> {
        let text = |name: &str, default: &str| attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_else(|| default.into());
        let mode = text("mode", "nearest");
        // The old `Upsample` op has no coordinate mode: its linear one is `asymmetric`.
        let coordinates = if node.op_type == "Upsample" { "asymmetric".to_string() } else { text("coordinate_transformation_mode", "half_pixel") };
        let align_corners = match (mode.as_str(), coordinates.as_str()) {
            ("nearest", "asymmetric" | "half_pixel" | "pytorch_half_pixel") => None,
            ("linear" | "bilinear", "half_pixel" | "pytorch_half_pixel") => Some(false),
            ("linear" | "bilinear", "align_corners") => Some(true),
            ("nearest" | "linear" | "bilinear", _) => {
                return Err(err(format!(
                    "coordinate_transformation_mode {coordinates} is not supported in {mode} mode (nearest: asymmetric, half_pixel; linear: half_pixel, align_corners)"
                )))
            }
            _ => return Err(err(format!("mode {mode} is not supported; only nearest and (bi)linear upsampling by an integer factor are"))),
        };
        let x = self.act(input(node, 0)?)?;
        let [_, h, w] = self.shapes[&x][..] else { return Err(err("its input is not a [N, C, H, W] map".into())) };
        // Opset 11+: X, roi, scales, sizes; before: X, scales.
        let given = |k: usize| node.input.get(k).filter(|n| !n.is_empty());
        let scales_input = if opset < 11 || node.op_type == "Upsample" { given(1) } else { given(2) };
        let factors: Vec<f64> = match (scales_input, given(3).filter(|_| opset >= 11 && node.op_type == "Resize")) {
            (Some(name), _) => self.floats(name)?.1.iter().map(|&v| f64::from(v)).collect(),
            (None, Some(name)) => {
                let sizes = self.ints(name)?;
                let [_, _, oh, ow] = sizes[..] else { return Err(err(format!("sizes {sizes:?} are not [N, C, H, W]"))) };
                vec![1.0, 1.0, oh as f64 / h as f64, ow as f64 / w as f64]
            }
            (None, None) => return Err(err("it has neither scales nor sizes".into())),
        };
        let [n, c, sh, sw] = factors[..] else { return Err(err(format!("scales {factors:?} are not [N, C, H, W]"))) };
        let scale = sh.round();
        if n != 1.0 || c != 1.0 || sh != sw || sh != scale || !(1.0..=limits::MAX_SIDE as f64).contains(&scale) {
            return Err(err(format!("scales {factors:?} are supported only as one integer factor on both spatial axes")));
        }
        let op = match align_corners {
            None => Op::Upsample2d { scale: scale as usize },
            Some(align_corners) => Op::ResizeBilinear { scale: scale as usize, align_corners },
        };
        self.layer(index, node, op, vec![])
    }

    /// The layer output that `node`'s first input is, and the padding of a zero `Pad` between
    /// them (0 without one).
    pub(super) fn padded_input(&mut self, node: &NodeProto) -> Result<(String, usize)> {
        let name = input(node, 0)?;
        match self.pads.get(name) {
            Some((source, padding)) => Ok((source.clone(), *padding)),
            None => Ok((self.act(name)?, 0)),
        }
    }

    /// A constant zero `Pad` of the spatial axes, equal on every side: remembered, and taken
    /// over by the `Conv` or `AveragePool` that reads it.
    pub(super) fn pad(&mut self, index: usize, node: &NodeProto, opset: i64) -> Result<()> {
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
        if let Some(source) = self.channels_last.get(input(node, 0)?).cloned() {
            return self.pad_view(index, node, source, &pads);
        }
        let [0, 0, top, left, 0, 0, bottom, right] = pads[..] else {
            return Err(err(format!("pads {pads:?} pad the batch or channel axes, or are not for an [N, C, H, W] tensor")));
        };
        let side = |v: i64| usize::try_from(v).ok().filter(|&p| p <= limits::MAX_SIDE).ok_or_else(|| err(format!("pads {pads:?} are negative (a crop) or implausible")));
        let (top, left, bottom, right) = (side(top)?, side(left)?, side(bottom)?, side(right)?);
        let (source, before) = self.padded_input(node)?;
        if !(top == left && top == bottom && top == right) {
            // Unequal sides: a padding layer of its own (equal ones fold into the next layer).
            let op = Op::Pad2d { top: top + before, left: left + before, bottom: bottom + before, right: right + before };
            return self.push(index, node, op, vec![source], vec![]).map(drop);
        }
        let padding = top;
        let padding = padding.checked_add(before).filter(|&p| p <= limits::MAX_SIDE).ok_or_else(|| err(format!("pads {pads:?} are implausible")))?;
        self.pads.insert(output(node)?.to_string(), (source, padding));
        Ok(())
    }

    pub(super) fn pool(&mut self, index: usize, node: &NodeProto) -> Result<()> {
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
    pub(super) fn concat(&mut self, index: usize, node: &NodeProto) -> Result<()> {
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

    pub(super) fn reduce_mean(&mut self, index: usize, node: &NodeProto, opset: i64) -> Result<()> {
        let axes = match (attr_ints(node, "axes"), node.input.get(1).filter(|a| !a.is_empty())) {
            (Some(a), _) => a,
            (None, Some(input)) if opset >= 18 => self.ints(input)?,
            _ => return Err(err("a mean over all axes is not a layer".into())),
        };
        let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
        axes.sort_unstable();
        if let Some(source) = self.channels_last.get(input(node, 0)?).cloned() {
            return self.reduce_mean_view(index, node, source, &axes);
        }
        if axes != [2, 3] {
            return Err(err(format!("a mean over axes {axes:?} is supported only over H and W (a global average pool)")));
        }
        self.layer(index, node, Op::GlobalAvgPool, vec![])
    }

    pub(super) fn batch_norm(&mut self, index: usize, node: &NodeProto) -> Result<()> {
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

    pub(super) fn flatten(&mut self, index: usize, node: &NodeProto, to_features: bool) -> Result<()> {
        if !to_features {
            return Err(err("only a flatten to [N, features] (axis 1) is supported".into()));
        }
        if let Some(source) = self.channels_last.get(input(node, 0)?).cloned() {
            return self.flatten_view(index, node, source);
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
    pub(super) fn unsqueeze(&mut self, node: &NodeProto, opset: i64) -> Result<()> {
        let x = self.act(input(node, 0)?)?;
        let mut axes = if opset < 13 { attr_ints(node, "axes").unwrap_or_default() } else { self.ints(input(node, 1)?)? };
        axes.iter_mut().for_each(|a| *a = if *a < 0 { *a + 4 } else { *a });
        axes.sort_unstable();
        if self.shapes[&x].len() == 1 && axes == [2, 3] {
            return self.alias(node);
        }
        Err(err(format!("Unsqueeze of a {:?} output along axes {axes:?} is supported only from [N, C] to [N, C, 1, 1]", self.shapes[&x])))
    }

    /// `Squeeze` of a pooled `[N, C, 1, 1]` along H and W (tf2onnx's form of Keras's global
    /// pooling): the same `[C]` values.
    pub(super) fn squeeze(&mut self, node: &NodeProto, opset: i64) -> Result<()> {
        let x = self.act(input(node, 0)?)?;
        let mut axes = match node.input.get(1).filter(|a| !a.is_empty()) {
            Some(name) if opset >= 13 => self.ints(name)?,
            _ => attr_ints(node, "axes").unwrap_or_default(),
        };
        axes.iter_mut().for_each(|a| *a = if *a < 0 { *a + 4 } else { *a });
        axes.sort_unstable();
        if self.shapes[&x].len() == 1 && axes == [2, 3] {
            return self.alias(node);
        }
        Err(err(format!("Squeeze of a {:?} output along axes {axes:?} is supported only from [N, C, 1, 1] to [N, C] (axes 2 and 3)", self.shapes[&x])))
    }

    /// `Shape` of a layer's output (or of the input, or of a constant): a constant, since every size but the
    /// batch is fixed at import. The batch axis reads as 1, so a size computed from it is the
    /// size for one image (the bundle's layers take any batch; a `Reshape` to `[1, -1]` is a
    /// flatten). TensorFlow-style "same" padding (timm's `tf_` models) computes its pads from
    /// these sizes.
    pub(super) fn shape(&mut self, node: &NodeProto) -> Result<()> {
        let name = input(node, 0)?;
        let dims: Vec<i64> = match self.consts.get(name) {
            // The shape of a constant (pads being assembled) is its own.
            Some(c) => c.dims.iter().map(|&d| d as i64).collect(),
            None if self.channels_last.contains_key(name) => self.view_dims(name).ok_or_else(|| err(format!("`{name}` has no channels-last shape")))?,
            None => std::iter::once(1).chain(self.shapes[&self.act(name)?].iter().map(|&d| d as i64)).collect(),
        };
        let rank = dims.len() as i64;
        // Opset 15's start and end, negative from the end, clamped to the axes.
        let at = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let (start, end) = (at(attr_i(node, "start", 0)), at(attr_i(node, "end", rank)));
        let dims = dims[start..end.max(start)].to_vec();
        self.consts.insert(output(node)?.to_string(), Const::ints(vec![dims.len()], dims));
        Ok(())
    }

    pub(super) fn reshape(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let target = self.ints(node.input.get(1).ok_or_else(|| err("it has no shape".into()))?)?;
        if let Some(source) = self.channels_last.get(input(node, 0)?).cloned() {
            return self.reshape_view(index, node, source, &target);
        }
        let x = self.act(input(node, 0)?)?;
        let per_image = &self.shapes[&x];
        if target == [-1] {
            // The batch flattened with the image: what the dynamo exporter writes for a
            // strided view at batch 1 (timm's ConvNeXt head), undone by a Gather right after.
            self.batch_flat.insert(output(node)?.to_string(), x);
            return Ok(());
        }
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

    pub(super) fn gemm(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        if attr_i(node, "transA", 0) != 0 {
            return Err(err("transA = 1 is not supported".into()));
        }
        let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
        let (dims, b) = self.floats(input(node, 1)?)?;
        let [r, c] = dims[..] else { return Err(err(format!("weight dims {dims:?} are not a matrix"))) };
        // The bundle's linear weight is [out, in].
        let (out, inp, mut weight) = if attr_i(node, "transB", 0) == 1 { (r, c, b) } else { (c, r, transpose(&b, r, c)) };
        weight.iter_mut().for_each(|v| *v *= alpha);
        let (x, hwc) = self.linear_input(input(node, 0)?)?;
        if let Some(chw) = hwc {
            weight = hwc_columns_to_chw(&weight, out, chw)?;
        }
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(name) => broadcast(&self.floats(name)?.1, out)?.into_iter().map(|v| v * beta).collect(),
            None => vec![0.0; out],
        };
        let op = Op::Linear { in_features: inp, out_features: out };
        self.push(index, node, op, vec![x], vec![("weight", Tensor::new(vec![out, inp], weight)?), ("bias", Tensor::new(vec![out], bias)?)]).map(drop)
    }

    pub(super) fn matmul(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let (dims, b) = self.floats(input(node, 1)?)?;
        let [inp, out] = dims[..] else { return Err(err(format!("a MatMul by {dims:?} is supported only with a constant matrix"))) };
        let op = Op::Linear { in_features: inp, out_features: out };
        let (x, hwc) = self.linear_input(input(node, 0)?)?;
        let mut weight = transpose(&b, inp, out);
        if let Some(chw) = hwc {
            weight = hwc_columns_to_chw(&weight, out, chw)?;
        }
        let weights = vec![("weight", Tensor::new(vec![out, inp], weight)?), ("bias", Tensor::new(vec![out], vec![0.0; out])?)];
        let name = self.push(index, node, op, vec![x], weights)?;
        if self.uses.get(output(node)?).copied() == Some(1) {
            self.open_bias.insert(name);
        }
        Ok(())
    }

    /// `Add` of two layers' outputs; otherwise an elementwise op with a constant, which is
    /// folded: into the input's normalisation, or into the bias of the `MatMul` before it.
    pub(super) fn arithmetic(&mut self, index: usize, node: &NodeProto) -> Result<()> {
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
        if let Some((scale, shift)) = self.channel_affine(node, &x, constant, &k, const_first)? {
            // y = x * scale[c] + shift[c] as an inference batch norm with mean 0 and variance 1
            // (eps below half an ulp of 1: the scale is exact).
            let channels = scale.len();
            let t = |v: Vec<f32>| Tensor::new(vec![channels], v);
            let weights = vec![("weight", t(scale)?), ("bias", t(shift)?), ("running_mean", t(vec![0.0; channels])?), ("running_var", t(vec![1.0; channels])?)];
            return self.push(index, node, Op::BatchNorm2d { channels, eps: AFFINE_EPS }, vec![x], weights).map(drop);
        }
        Err(err(format!(
            "{} with a constant is supported only as the input's normalisation (before any layer), as the bias after a MatMul, or per channel of a map (a constant of shape [1, C, 1, 1], [C, 1, 1] or one value)",
            node.op_type
        )))
    }

    /// `x op k` for a map `x` `[C, H, W]` and a constant `k` that is one value or one per
    /// channel (ConvNeXt's layer scale, `x * gamma[c]`): the `(scale, shift)` per channel of
    /// the affine map it is, or `None` for other shapes.
    fn channel_affine(&self, node: &NodeProto, x: &str, constant: &str, k: &[f32], const_first: bool) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        let shape = &self.shapes[x];
        let dims = &self.consts[constant].dims;
        let per_channel = match dims.as_slice() {
            [c, 1, 1] | [1, c, 1, 1] => Some(*c),
            _ => None,
        };
        let ([channels, _, _], true) = (shape.as_slice(), k.len() == 1 || per_channel == shape.first().copied()) else {
            return Ok(None);
        };
        let k = broadcast(k, *channels)?;
        let (ones, zeros) = (vec![1.0; *channels], vec![0.0; *channels]);
        Ok(match (node.op_type.as_str(), const_first) {
            ("Mul", _) => Some((k, zeros)),
            ("Div", false) => Some((k.iter().map(|v| 1.0 / v).collect(), zeros)),
            ("Add", _) => Some((ones, k)),
            ("Sub", false) => Some((ones, k.iter().map(|v| -v).collect())),
            ("Sub", true) => Some((vec![-1.0; *channels], k)),
            _ => None,
        })
    }

    /// The graph's own normalisation of its input, composed into the bundle's mean and std:
    /// with x' = (x - mean) / std so far, `x' - k` has mean + k std, `x' / k` has std k, ...
    pub(super) fn fold_normalisation(&mut self, node: &NodeProto, k: &[f32], const_first: bool) -> Result<()> {
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

/// The `eps` of a batch norm that stands for a per-channel affine map: `sqrt(1 + eps)` is 1 in
/// float32, so the map's scale is used as it is.
const AFFINE_EPS: f32 = 1e-12;

/// A node's `auto_pad` attribute ("" when absent).
fn auto_pad(node: &NodeProto) -> String {
    attr(node, "auto_pad").map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_default()
}

/// A convolution's padding `[top, left, bottom, right]` on an input of `shape`: its `pads`
/// (ONNX order: begins then ends, `[top, left, bottom, right]`), or what `auto_pad` asks for.
/// `SAME_*` pads so that the output is `ceil(size / stride)`, the odd pixel at the end (UPPER,
/// TensorFlow's and Keras's) or at the start (LOWER).
fn conv_padding(node: &NodeProto, shape: &[usize], kernel: usize, stride: usize, dilation: usize) -> Result<[usize; 4]> {
    match auto_pad(node).as_str() {
        "" | "NOTSET" => {
            let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
            let [top, left, bottom, right] = pads[..] else { return Err(err(format!("pads {pads:?} are not [top, left, bottom, right]"))) };
            let side = |v: i64| usize::try_from(v).ok().filter(|&p| p <= limits::MAX_SIDE).ok_or_else(|| err(format!("pads {pads:?} are negative or implausible")));
            Ok([side(top)?, side(left)?, side(bottom)?, side(right)?])
        }
        "VALID" => Ok([0; 4]),
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            let [_, h, w] = shape[..] else { return Ok([0; 4]) };
            let span = dilation.saturating_mul(kernel.max(1) - 1).saturating_add(1);
            let total = |size: usize| (size.div_ceil(stride.max(1)).saturating_sub(1)).saturating_mul(stride).saturating_add(span).saturating_sub(size);
            let split = |t: usize| if mode == "SAME_UPPER" { (t / 2, t - t / 2) } else { (t - t / 2, t / 2) };
            let ((top, bottom), (left, right)) = (split(total(h)), split(total(w)));
            Ok([top, left, bottom, right])
        }
        other => Err(err(format!("auto_pad {other} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"))),
    }
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
