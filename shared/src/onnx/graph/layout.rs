//! Channels-last values. Keras and TensorFlow lay images out as `[N, H, W, C]`: tf2onnx
//! transposes once, after the input, while Keras's torch backend transposes to channels first
//! around every convolution and pool and runs biases, batch norms, activations and residual sums
//! channels last in between. The importer keeps such a value as a *view*: a bundle node holds
//! the map `[C, H, W]` (or a pooled `[C]`) and the ONNX value is its transpose. Elementwise ops
//! on views run on the maps (a constant along the last axis is one value per channel), the
//! transpose back is the map itself, and a flatten of a view (Keras's `Flatten`) lists the
//! values in `H, W, C` order, which the `Dense` layer reading it takes over by reordering the
//! rows of its weight. Nothing is ever transposed at run time.

use std::collections::HashMap;

use super::{attr_i, attr_ints, err, input, output, Const, Translator};
use crate::model::Op;
use crate::onnx::proto::{GraphProto, NodeProto};
use crate::Result;

/// Ops that act on each value alone, or with a constant, or with another view of equal shape:
/// run on the maps behind their views.
const ELEMENTWISE: &[&str] = &["Relu", "Sigmoid", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Gelu", "Erf", "Add", "Sub", "Mul", "Div"];

/// Whether graph input `name`, of per-image dims `dims`, is laid out channels last: the first op
/// that reads it (after casts and elementwise ops, e.g. Keras's `Rescaling`) is a `Transpose` to
/// channels first, or a `Reshape` that moves a single channel first (tf2onnx's form of that
/// transpose when `C` is 1).
pub(super) fn channels_last_input(graph: &GraphProto, name: &str, dims: [usize; 3], consts: &HashMap<String, Const>) -> bool {
    let mut derived = vec![name];
    for node in &graph.node {
        if !node.input.iter().any(|i| derived.contains(&i.as_str())) {
            continue;
        }
        match node.op_type.as_str() {
            "Cast" | "Identity" | "Add" | "Sub" | "Mul" | "Div" => derived.extend(node.output.iter().map(String::as_str)),
            "Transpose" => return attr_ints(node, "perm").as_deref() == Some(&[0, 3, 1, 2]),
            "Reshape" => {
                let [h, w, 1] = dims else { return false };
                let target = node.input.get(1).and_then(|t| consts.get(t)).and_then(Const::as_ints);
                return matches!(target.as_deref(), Some([_, 1, th, tw]) if *th == h as i64 && *tw == w as i64);
            }
            _ => return false,
        }
    }
    false
}

/// The name of the channels-first stand-in for view `name` inside a shadow node.
fn stand_in(name: &str) -> String {
    format!("{name} (channels first)")
}

impl Translator {
    fn is_view(&self, name: &str) -> bool {
        self.channels_last.contains_key(name) || self.gelu_views.contains(name)
    }

    /// `Transpose` between channels first and channels last: `[0, 2, 3, 1]` of a map (or of a
    /// pooled vector, ONNX's `[N, C, 1, 1]`) makes a view, `[0, 3, 1, 2]` of a view is its map.
    pub(super) fn transpose(&mut self, node: &NodeProto) -> Result<()> {
        let (x, out) = (input(node, 0)?, output(node)?.to_string());
        let perm = attr_ints(node, "perm").unwrap_or_default();
        if perm == [0, 3, 1, 2] {
            if let Some(source) = self.channels_last.get(x).cloned() {
                self.values.insert(out, source);
                return Ok(());
            }
        }
        if perm == [0, 2, 3, 1] {
            let source = self.act(x)?;
            if matches!(self.shapes[&source].len(), 1 | 3) {
                self.channels_last.insert(out, source);
                return Ok(());
            }
        }
        Err(err(format!(
            "Transpose with perm {perm:?} is supported only between channels first and channels last: [0, 2, 3, 1] of an [N, C, H, W] map, [0, 3, 1, 2] of such a view (or of a channels-last input)"
        )))
    }

    /// Runs an elementwise `node` whose inputs are channels-last views on the maps behind them,
    /// its output a view again. A constant operand must run along the last axis (shape `[C]`,
    /// `[1, 1, 1, C]`, or one value): it becomes `[C, 1, 1]`. Returns whether the node was taken
    /// (it was not when no input is a view).
    pub(super) fn elementwise_view(&mut self, index: usize, node: &NodeProto, opset: i64) -> Result<bool> {
        if !ELEMENTWISE.contains(&node.op_type.as_str()) || !node.input.iter().any(|i| self.is_view(i)) {
            return Ok(false);
        }
        let channels = node.input.iter().find_map(|i| self.channels_last.get(i)).map(|source| self.shapes[source][0]);
        let mut shadow = node.clone();
        for (k, name) in node.input.iter().enumerate() {
            if name.is_empty() || self.gelu_views.contains(name) {
                continue;
            }
            if let Some(source) = self.channels_last.get(name).cloned() {
                self.values.insert(stand_in(name), source);
            } else if let Some(c) = self.consts.get(name) {
                let mut dims: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
                match (dims.as_slice(), channels) {
                    ([], _) => {}
                    ([n], Some(channels)) if *n == channels => dims = vec![channels, 1, 1],
                    _ => {
                        return Err(err(format!(
                            "its constant `{name}` of shape {:?} does not run along the channels of the channels-last value it meets (one value, or [C] with C = {})",
                            c.dims,
                            channels.map_or_else(|| "?".into(), |c| c.to_string())
                        )))
                    }
                }
                let reshaped = Const { dims, ..c.clone() };
                self.consts.insert(stand_in(name), reshaped);
            } else {
                return Err(err(format!(
                    "it mixes channels-last values with `{name}`, a channels-first one; transpose one of them first (perm [0, 3, 1, 2] or [0, 2, 3, 1])"
                )));
            }
            shadow.input[k] = stand_in(name);
        }
        self.node(index, &shadow, opset)?;
        let out = output(node)?.to_string();
        if let Some(value) = self.values.remove(&out) {
            self.channels_last.insert(out, value);
        } else if self.gelu.contains_key(&out) {
            self.gelu_views.insert(out);
        } else {
            return Err(err(format!("{} of a channels-last value gave no layer output", node.op_type)));
        }
        Ok(true)
    }

    /// `Reshape` of the channels-last view of `source`: to `[N, features]` (a flatten in `H, W,
    /// C` order), to `[N, C, H, W]` where that is the same order (one channel, or one pixel), or
    /// to `[N, H, W, C]` (the view itself).
    pub(super) fn reshape_view(&mut self, index: usize, node: &NodeProto, source: String, target: &[i64]) -> Result<()> {
        let shape = self.shapes[&source].clone();
        let out = output(node)?.to_string();
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let features: i64 = dims.iter().product();
        let batch = |n: i64| n == 0 || n == 1 || n == -1;
        match (target, dims.as_slice()) {
            ([n, f], _) if batch(*n) && (*f == features || (*f == -1 && *n != -1)) => self.flatten_view(index, node, source),
            ([n, tc, th, tw], [c, h, w]) if batch(*n) && [*tc, *th, *tw] == [*c, *h, *w] && (*c == 1 || h * w == 1) => {
                self.values.insert(out, source);
                Ok(())
            }
            ([n, th, tw, tc], [c, h, w]) if batch(*n) && [*tc, *th, *tw] == [*c, *h, *w] => {
                self.channels_last.insert(out, source);
                Ok(())
            }
            _ => Err(err(format!(
                "Reshape of a channels-last {:?} value to {target:?} is supported only as a flatten to [N, {features}] or as the same values channels first",
                std::iter::once(1).chain(dims.iter().skip(1).copied()).chain(dims.first().copied()).collect::<Vec<_>>()
            ))),
        }
    }

    /// `Flatten` of the channels-last view of `source` (Keras's `Flatten` on `[N, H, W, C]`).
    pub(super) fn flatten_view(&mut self, index: usize, node: &NodeProto, source: String) -> Result<()> {
        let out = output(node)?.to_string();
        match self.shapes[&source][..] {
            [_] => {
                self.values.insert(out, source);
            }
            [c, h, w] => {
                let flat = self.push_inner(index, node, Op::Flatten, vec![source], vec![])?;
                if c == 1 || h * w == 1 {
                    self.values.insert(out, flat);
                } else {
                    self.hwc_flat.insert(out, (flat, [c, h, w]));
                }
            }
            ref other => return Err(err(format!("a flatten of a channels-last {other:?} value is not supported"))),
        }
        Ok(())
    }

    /// `ReduceMean` of a channels-last view over H and W (Keras's `GlobalAveragePooling2D`): a
    /// global average pool, a vector, or with `keepdims` a view of one.
    pub(super) fn reduce_mean_view(&mut self, index: usize, node: &NodeProto, source: String, axes: &[i64]) -> Result<()> {
        if axes != [1, 2] {
            return Err(err(format!("a mean of a channels-last value over axes {axes:?} is supported only over H and W (axes 1 and 2)")));
        }
        let pooled = self.push_inner(index, node, Op::GlobalAvgPool, vec![source], vec![])?;
        let out = output(node)?.to_string();
        if attr_i(node, "keepdims", 1) != 0 {
            self.channels_last.insert(out, pooled);
        } else {
            self.values.insert(out, pooled);
        }
        Ok(())
    }

    /// A zero `Pad` of the spatial axes of a channels-last view (`pads` in `N, H, W, C` order;
    /// Keras's `ZeroPadding2D`): a padding layer on the map.
    pub(super) fn pad_view(&mut self, index: usize, node: &NodeProto, source: String, pads: &[i64]) -> Result<()> {
        let [0, top, left, 0, 0, bottom, right, 0] = pads[..] else {
            return Err(err(format!("pads {pads:?} of a channels-last value pad the batch or channel axes, or are not for an [N, H, W, C] tensor")));
        };
        let side = |v: i64| usize::try_from(v).ok().filter(|&p| p <= crate::model::limits::MAX_SIDE).ok_or_else(|| err(format!("pads {pads:?} are negative (a crop) or implausible")));
        let op = Op::Pad2d { top: side(top)?, left: side(left)?, bottom: side(bottom)?, right: side(right)? };
        let padded = self.push_inner(index, node, op, vec![source], vec![])?;
        self.channels_last.insert(output(node)?.to_string(), padded);
        Ok(())
    }

    /// What a `MatMul` or `Gemm` reads: the bundle node, and for a flatten of a channels-last
    /// map the map's `[C, H, W]`, in whose `H, W, C` order the weight's input rows are.
    pub(super) fn linear_input(&self, name: &str) -> Result<(String, Option<[usize; 3]>)> {
        match self.hwc_flat.get(name) {
            Some((flat, chw)) => Ok((flat.clone(), Some(*chw))),
            None => Ok((self.act(name)?, None)),
        }
    }

    /// The per-image shape `Shape` reports for a view: `[1, H, W, C]`.
    pub(super) fn view_dims(&self, name: &str) -> Option<Vec<i64>> {
        let source = self.channels_last.get(name)?;
        let dims = match self.shapes[source][..] {
            [c, h, w] => [c, h, w],
            [c] => [c, 1, 1],
            _ => return None,
        };
        Some(vec![1, dims[1] as i64, dims[2] as i64, dims[0] as i64])
    }
}

/// A linear weight `[out, in]` whose inputs are a `[C, H, W]` map listed in `H, W, C` order,
/// with its columns reordered for the bundle's flatten (`C, H, W` order); an error when `in` is
/// not the map's size.
pub(super) fn hwc_columns_to_chw(weight: &[f32], out: usize, [c, h, w]: [usize; 3]) -> Result<Vec<f32>> {
    let features = c * h * w;
    if out.checked_mul(features) != Some(weight.len()) {
        return Err(err(format!("a dense layer of {} weights for {out} outputs reads a flattened {c}x{h}x{w} map ({features} values)", weight.len())));
    }
    let mut reordered = vec![0.0; weight.len()];
    for o in 0..out {
        let (from, to) = (&weight[o * features..(o + 1) * features], &mut reordered[o * features..(o + 1) * features]);
        for ch in 0..c {
            for p in 0..h * w {
                to[ch * h * w + p] = from[p * c + ch];
            }
        }
    }
    Ok(reordered)
}

#[cfg(test)]
mod tests {
    use super::hwc_columns_to_chw;

    #[test]
    fn hwc_columns_follow_the_flatten() {
        // 2 channels of 1x3 pixels; a row of the weight reads value (ch, p) at column p * 2 + ch.
        let (c, h, w) = (2, 1, 3);
        let hwc: Vec<f32> = (0..2 * c * h * w).map(|i| i as f32).collect();
        let chw = hwc_columns_to_chw(&hwc, 2, [c, h, w]).unwrap();
        assert!(hwc_columns_to_chw(&hwc, 3, [c, h, w]).is_err());
        assert_eq!(chw, vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0, 6.0, 8.0, 10.0, 7.0, 9.0, 11.0]);
        // A map as a vector in both orders: the dot products agree.
        let map_chw = [1.0, -2.0, 3.0, 0.5, 4.0, -1.0];
        let map_hwc: Vec<f32> = (0..h * w).flat_map(|p| (0..c).map(move |ch| map_chw[ch * h * w + p])).collect();
        for o in 0..2 {
            let a: f32 = (0..6).map(|i| hwc[o * 6 + i] * map_hwc[i]).sum();
            let b: f32 = (0..6).map(|i| chw[o * 6 + i] * map_chw[i]).sum();
            assert_eq!(a, b);
        }
    }
}
