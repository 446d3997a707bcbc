//! ConvNeXt's and the transformers' pieces: a layer normalisation over the channels (ONNX
//! `LayerNormalization` between the channels-last `Transpose` and the one back, or on a pooled
//! `[N, C]` vector) and the exact GELU (the `Gelu` op of opset 20, or the `Div -> Erf -> Add ->
//! Mul -> Mul` that PyTorch writes for it before).

use super::{attr, attr_f, attr_i, err, input, output, Translator};
use crate::model::Op;
use crate::onnx::proto::NodeProto;
use crate::{Result, Tensor};

/// How far a value is into `x (1 + erf(x / sqrt(2))) / 2`, as PyTorch's exporter writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GeluStep {
    /// `x / sqrt(2)`
    Scaled,
    /// `erf(x / sqrt(2))`
    Erf,
    /// `1 + erf(x / sqrt(2))`
    Shifted,
    /// `x (1 + erf(x / sqrt(2)))`
    Product,
}

impl Translator {
    /// `LayerNormalization` over the channels: of a channels-last view of a map (axis -1 or 3),
    /// or of a `[N, C]` vector (axis -1 or 1). A `channel_norm` layer.
    pub(super) fn layer_norm(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        self.check_unused_outputs(node, 1)?;
        let x = input(node, 0)?;
        let axis = attr_i(node, "axis", -1);
        let (source, channels_last) = match self.channels_last.get(x) {
            Some(source) => (source.clone(), true),
            None => (self.act(x)?, false),
        };
        let shape = self.shapes[&source].clone();
        // A channels-last view is 4-D in ONNX even over a pooled [C] vector ([N, 1, 1, C]).
        let over_channels = if channels_last { axis == -1 || axis == 3 } else { shape.len() == 1 && (axis == -1 || axis == 1) };
        if !over_channels {
            return Err(err(format!(
                "LayerNormalization along axis {axis} of {}{shape:?} per image is not supported; only over the channels: of a map transposed to channels last, or of a [C] vector",
                if channels_last { "a channels-last view of " } else { "" }
            )));
        }
        let channels = shape[0];
        let (_, weight) = self.floats(input(node, 1)?)?;
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => self.floats(b)?.1,
            None => vec![0.0; channels],
        };
        if weight.len() != channels || bias.len() != channels {
            return Err(err(format!("its scale ({}) and bias ({}) must have one value per channel ({channels})", weight.len(), bias.len())));
        }
        let op = Op::ChannelNorm { channels, eps: attr_f(node, "epsilon", 1e-5) };
        let weights = vec![("weight", Tensor::new(vec![channels], weight)?), ("bias", Tensor::new(vec![channels], bias)?)];
        let name = self.push_inner(index, node, op, vec![source], weights)?;
        let out = output(node)?.to_string();
        if channels_last {
            self.channels_last.insert(out, name);
        } else {
            self.values.insert(out, name);
        }
        Ok(())
    }

    /// `InstanceNormalization` of a map: an `instance_norm` layer.
    pub(super) fn instance_norm(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let source = self.act(input(node, 0)?)?;
        let &[channels, _, _] = self.shapes[&source].as_slice() else {
            return Err(err(format!("InstanceNormalization of a {:?} value per image is supported only of an [N, C, H, W] map", self.shapes[&source])));
        };
        let (weight, bias) = (self.floats(input(node, 1)?)?.1, self.floats(input(node, 2)?)?.1);
        if weight.len() != channels || bias.len() != channels {
            return Err(err(format!("its scale ({}) and bias ({}) must have one value per channel ({channels})", weight.len(), bias.len())));
        }
        let op = Op::InstanceNorm { channels, eps: attr_f(node, "epsilon", 1e-5) };
        let weights = vec![("weight", Tensor::new(vec![channels], weight)?), ("bias", Tensor::new(vec![channels], bias)?)];
        self.push(index, node, op, vec![source], weights).map(drop)
    }

    /// `Gather` along axis 0 of a batch-flattened layer output (`Reshape` to `[-1]`) with the
    /// indices `0, 1, ..., n-1` of one image in order, shaped `[1, ...]`: the image itself, as
    /// the dynamo exporter writes a strided view (`as_strided`) at batch 1. Other indices would
    /// move values between images or within one, and are refused.
    pub(super) fn gather_view(&mut self, node: &NodeProto) -> Result<()> {
        let source = self.batch_flat[input(node, 0)?].clone();
        let indices = self.consts.get(input(node, 1)?).ok_or_else(|| err("its indices must be a constant".into()))?;
        let per_image: usize = self.shapes[&source].iter().product();
        let in_order = indices.as_ints().is_some_and(|v| v.len() == per_image && v.iter().enumerate().all(|(i, &k)| k == i as i64));
        if attr_i(node, "axis", 0) != 0 || indices.dims.first() != Some(&1) || !in_order {
            return Err(err(format!(
                "a Gather from a batch-flattened layer output is supported only as the identity view of one image (axis 0, indices 0..{per_image} in order, shape [1, ...])"
            )));
        }
        self.values.insert(output(node)?.to_string(), source);
        Ok(())
    }

    /// The `Gelu` op (opset 20): the exact one; the tanh approximation is refused.
    pub(super) fn gelu(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let approximate = attr(node, "approximate").map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_else(|| "none".into());
        if approximate != "none" {
            return Err(err(format!("Gelu with approximate = `{approximate}` is not supported (only the exact one, `none`)")));
        }
        self.layer(index, node, Op::Gelu, vec![])
    }

    /// Takes `node` as a step of PyTorch's opset-17 GELU, `Mul(Mul(x, Add(Erf(Div(x, sqrt(2))),
    /// 1)), 0.5)`, when it is one: the steps become one `gelu` layer at the last `Mul`. Returns
    /// whether the node was taken.
    pub(super) fn gelu_step(&mut self, index: usize, node: &NodeProto) -> Result<bool> {
        let op = node.op_type.as_str();
        if !matches!(op, "Div" | "Erf" | "Add" | "Mul") {
            return Ok(false);
        }
        let out = output(node)?.to_string();
        let scalar = |name: &str| self.consts.get(name).filter(|c| !c.opaque && c.values.len() == 1).map(|c| c.values[0]);
        let step = |name: &str| self.gelu.get(name).cloned();
        let operands: Vec<&str> = node.input.iter().map(String::as_str).collect();
        let taken = match (op, operands.as_slice()) {
            ("Div", [a, b]) => match (self.values.get(*a), scalar(b)) {
                (Some(x), Some(d)) if (d - std::f64::consts::SQRT_2).abs() < 1e-5 => Some((x.clone(), GeluStep::Scaled)),
                _ => None,
            },
            ("Erf", [a]) => match step(a) {
                Some((x, GeluStep::Scaled)) => Some((x, GeluStep::Erf)),
                _ => return Err(err("Erf is supported only within the exact GELU, x (1 + erf(x / sqrt(2))) / 2, as PyTorch exports it".into())),
            },
            ("Add", [a, b]) => match (step(a), step(b)) {
                (Some((x, GeluStep::Erf)), None) if scalar(b) == Some(1.0) => Some((x, GeluStep::Shifted)),
                (None, Some((x, GeluStep::Erf))) if scalar(a) == Some(1.0) => Some((x, GeluStep::Shifted)),
                _ => None,
            },
            ("Mul", [a, b]) => {
                let (sa, sb) = (step(a), step(b));
                let source = |name: &str| self.values.get(name).cloned();
                match (sa, sb) {
                    (Some((x, GeluStep::Shifted)), None) if source(b).as_ref() == Some(&x) => Some((x, GeluStep::Product)),
                    (None, Some((x, GeluStep::Shifted))) if source(a).as_ref() == Some(&x) => Some((x, GeluStep::Product)),
                    (Some((x, GeluStep::Product)), None) if scalar(b) == Some(0.5) => {
                        self.push(index, node, Op::Gelu, vec![x], vec![])?;
                        return Ok(true);
                    }
                    (None, Some((x, GeluStep::Product))) if scalar(a) == Some(0.5) => {
                        self.push(index, node, Op::Gelu, vec![x], vec![])?;
                        return Ok(true);
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match taken {
            Some(value) => {
                self.gelu.insert(out, value);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
