//! `Slice` and `Split` of a layer's output along the channels: each becomes `slice_channels`
//! layers (GhostNet and ReXNet slice their maps, MixNet and CSP networks split them). Slices of
//! constants are folded before they get here (`fold`).

use super::{attr_i, attr_ints, err, Translator};
use crate::model::Op;
use crate::onnx::proto::NodeProto;
use crate::Result;

impl Translator {
    /// `Slice(x, starts, ends, axes, steps)` (opset 10+, bounds as constant inputs): along the
    /// channels with step 1; along another axis only when it keeps all of it (exporters slice
    /// the batch axis whole).
    pub(super) fn slice(&mut self, index: usize, node: &NodeProto) -> Result<()> {
        let x = self.act(node.input.first().ok_or_else(|| err("it has no input".into()))?)?;
        let shape = self.shapes[&x].clone();
        let rank = shape.len() as i64 + 1;
        let ints = |k: usize| -> Result<Option<Vec<i64>>> { node.input.get(k).filter(|n| !n.is_empty()).map(|n| self.ints(n)).transpose() };
        let (Some(starts), Some(ends)) = (ints(1)?, ints(2)?) else {
            return Err(err("a Slice needs constant starts and ends inputs (opset 10 and later)".into()));
        };
        let axes = ints(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
        if [ends.len(), axes.len(), steps.len()].iter().any(|&n| n != starts.len()) {
            return Err(err("its starts, ends, axes and steps differ in length".into()));
        }
        let mut channels = None;
        for k in 0..starts.len() {
            let axis = if axes[k] < 0 { axes[k] + rank } else { axes[k] };
            let dim = match axis {
                0 => i64::MAX,
                a if (1..rank).contains(&a) => shape[a as usize - 1] as i64,
                a => return Err(err(format!("axis {a} is outside its input's {rank} axes"))),
            };
            let (start, end) = (clamp(starts[k], dim), clamp(ends[k], dim));
            if steps[k] != 1 {
                return Err(err(format!("a Slice with step {} is supported only with step 1", steps[k])));
            }
            match axis {
                1 => channels = Some((start as usize, end as usize)),
                _ if start == 0 && end == dim => {}
                a => return Err(err(format!("a Slice along axis {a} ({start}..{end} of {dim}) is supported only along the channels (axis 1)"))),
            }
        }
        match channels {
            None => self.alias(node),
            Some((0, end)) if end == shape[0] => self.alias(node),
            Some((start, end)) => self.push(index, node, Op::SliceChannels { start, end }, vec![x], vec![]).map(drop),
        }
    }

    /// `Split(x, split)` along the channels: one `slice_channels` layer per output, the sizes
    /// from the `split` input (opset 13+) or attribute, else equal parts (opset 18's
    /// `num_outputs`: the last part may be smaller).
    pub(super) fn split(&mut self, index: usize, node: &NodeProto, opset: i64) -> Result<()> {
        let x = self.act(node.input.first().ok_or_else(|| err("it has no input".into()))?)?;
        let shape = self.shapes[&x].clone();
        let rank = shape.len() as i64 + 1;
        let axis = attr_i(node, "axis", 0);
        if axis != 1 && axis != 1 - rank {
            return Err(err(format!("a Split along axis {axis} is supported only along the channels (axis 1)")));
        }
        let channels = shape[0];
        let parts = node.output.len();
        let sizes: Vec<usize> = match (node.input.get(1).filter(|s| !s.is_empty()), attr_ints(node, "split")) {
            (Some(name), _) if opset >= 13 => self.ints(name)?.into_iter().map(|v| v.max(0) as usize).collect(),
            (_, Some(split)) => split.into_iter().map(|v| v.max(0) as usize).collect(),
            _ => {
                let each = channels.div_ceil(parts.max(1));
                (0..parts).map(|k| each.min(channels.saturating_sub(k * each))).collect()
            }
        };
        if sizes.len() != parts || sizes.iter().sum::<usize>() != channels || sizes.contains(&0) {
            return Err(err(format!("it splits {channels} channels into {sizes:?} for {parts} outputs")));
        }
        let mut start = 0;
        for (out, size) in node.output.iter().zip(sizes) {
            let name = self.push_inner(index, node, Op::SliceChannels { start, end: start + size }, vec![x.clone()], vec![])?;
            if !out.is_empty() {
                self.values.insert(out.clone(), name);
            }
            start += size;
        }
        Ok(())
    }
}

/// An ONNX slice bound on an axis of `dim` values: negative counts from the end, and the
/// result is clamped to `0..=dim` (exporters write `i64::MAX` for "to the end").
fn clamp(bound: i64, dim: i64) -> i64 {
    let b = if bound < 0 { bound.saturating_add(dim) } else { bound };
    b.clamp(0, dim)
}
