//! Constant folding: nodes whose inputs are all constants are evaluated at import time.
//!
//! Exporters compute some attributes with small subgraphs of constants: PyTorch's TorchScript
//! exporter turns `F.pad(x, (1, 1, 1, 1))` into `ConstantOfShape -> Concat -> Reshape -> Slice ->
//! Transpose -> Reshape -> Cast` feeding the `Pad`'s pads. These ops run here on the host, on
//! int64 or float tensors of at most [`MAX_FOLDED`] values, so that the layer reading the result
//! sees a plain constant. Values are held as f64, which represents every int64 an exporter
//! writes for a shape or an index exactly (|v| < 2^53).

use super::proto::{data_type, NodeProto};
use crate::{Error, Result};

/// The ops folded when every input is a constant.
pub(super) const FOLDABLE: &[&str] =
    &["ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze", "Squeeze", "Gather", "Add", "Sub", "Mul", "Div", "Neg", "Ceil", "Floor", "Clip"];

/// The largest constant a folded node may produce (a hostile file cannot make it allocate more).
pub const MAX_FOLDED: usize = 1 << 20;

/// A constant tensor: its dims and its values, float or int64. Constants of other types (bool
/// masks, strings) keep only their dims (`opaque`): an op that needs their values says so.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Const {
    pub dims: Vec<usize>,
    pub values: Vec<f64>,
    pub int: bool,
    pub opaque: bool,
}

impl Const {
    pub fn floats(dims: Vec<usize>, values: Vec<f32>) -> Self {
        Const { dims, values: values.into_iter().map(f64::from).collect(), int: false, opaque: false }
    }

    pub fn ints(dims: Vec<usize>, values: Vec<i64>) -> Self {
        Const { dims, values: values.into_iter().map(|v| v as f64).collect(), int: true, opaque: false }
    }

    pub fn opaque(dims: Vec<usize>) -> Self {
        Const { dims, values: vec![], int: false, opaque: true }
    }

    pub fn as_floats(&self) -> Option<Vec<f32>> {
        (!self.int && !self.opaque).then(|| self.values.iter().map(|&v| v as f32).collect())
    }

    pub fn as_ints(&self) -> Option<Vec<i64>> {
        (self.int && !self.opaque).then(|| self.values.iter().map(|&v| v as i64).collect())
    }

    fn len(&self) -> usize {
        self.dims.iter().product()
    }
}

fn err(text: String) -> Error {
    Error::Onnx(text)
}

fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

/// `axis` (negative counts from the end) as an index into `rank` axes.
fn axis(value: i64, rank: usize) -> Result<usize> {
    let rank_i = rank as i64;
    let a = if value < 0 { value + rank_i } else { value };
    usize::try_from(a).ok().filter(|&a| a < rank).ok_or_else(|| err(format!("axis {value} is outside a tensor of rank {rank}")))
}

fn checked_len(dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FOLDED)
        .ok_or_else(|| err(format!("a folded constant of shape {dims:?} is larger than {MAX_FOLDED} values")))
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// The output tensor of `dims` whose element at multi-index `i` is `values[source(i)]`.
fn gather(dims: Vec<usize>, int: bool, values: &[f64], source: impl Fn(&[usize]) -> usize) -> Result<Const> {
    let len = checked_len(&dims)?;
    let mut index = vec![0; dims.len()];
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(values[source(&index)]);
        for k in (0..dims.len()).rev() {
            index[k] += 1;
            if index[k] < dims[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Ok(Const { dims, values: out, int, opaque: false })
}

/// Evaluates `node` on constant inputs (`None` for an omitted optional input); opset decides
/// whether axes are attributes or inputs.
pub(super) fn fold(node: &NodeProto, inputs: &[Option<&Const>], opset: i64) -> Result<Const> {
    if let Some(k) = inputs.iter().position(|c| c.is_some_and(|c| c.opaque)) {
        return Err(err(format!("input {k} is a constant of a type that is not folded (only float and int64 are)")));
    }
    let input = |k: usize| inputs.get(k).copied().flatten().ok_or_else(|| err(format!("input {k} is missing")));
    let ints = |k: usize| -> Result<Vec<i64>> { input(k)?.as_ints().ok_or_else(|| err(format!("input {k} must be int64")))};
    match node.op_type.as_str() {
        "ConstantOfShape" => {
            let dims = ints(0)?.into_iter().map(|d| usize::try_from(d).map_err(|_| err(format!("a negative dimension {d}")))).collect::<Result<Vec<_>>>()?;
            let len = checked_len(&dims)?;
            let (value, int) = match node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref()) {
                None => (0.0, false),
                Some(t) if t.data_type == data_type::INT64 => (t.int64s().map_err(err)?.first().copied().unwrap_or(0) as f64, true),
                Some(t) => (f64::from(t.floats().map_err(err)?.first().copied().unwrap_or(0.0)), false),
            };
            Ok(Const { dims, values: vec![value; len], int, opaque: false })
        }
        "Concat" => {
            let parts = (0..inputs.len()).map(input).collect::<Result<Vec<_>>>()?;
            let first = parts.first().ok_or_else(|| err("it has no input".into()))?;
            let ax = axis(attr_i(node, "axis").unwrap_or(0), first.dims.len())?;
            let mut dims = first.dims.clone();
            dims[ax] = 0;
            for p in &parts {
                if p.dims.len() != dims.len() || p.dims.iter().enumerate().any(|(k, &d)| k != ax && d != dims[k]) || p.int != first.int {
                    return Err(err(format!("it joins constants of shapes {:?} and {:?}", first.dims, p.dims)));
                }
                dims[ax] += p.dims[ax];
            }
            checked_len(&dims)?;
            let (outer, inner): (usize, usize) = (dims[..ax].iter().product(), dims[ax + 1..].iter().product());
            let mut values = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let block = p.dims[ax] * inner;
                    values.extend_from_slice(&p.values[o * block..][..block]);
                }
            }
            Ok(Const { dims, values, int: first.int, opaque: false })
        }
        "Reshape" => {
            let data = input(0)?;
            let target = ints(1)?;
            let allow_zero = attr_i(node, "allowzero").unwrap_or(0) != 0;
            let mut dims = Vec::with_capacity(target.len());
            let mut unknown = None;
            for (k, &t) in target.iter().enumerate() {
                match t {
                    0 if !allow_zero => dims.push(*data.dims.get(k).ok_or_else(|| err(format!("shape {target:?} copies a dimension the data lacks")))?),
                    -1 if unknown.is_none() => {
                        unknown = Some(k);
                        dims.push(1);
                    }
                    t => dims.push(usize::try_from(t).map_err(|_| err(format!("shape {target:?} is not a shape")))?),
                }
            }
            let product = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if let Some(k) = unknown {
                let known = product(&dims).unwrap_or(0);
                if known == 0 || data.len() % known != 0 {
                    return Err(err(format!("{:?} does not reshape to {target:?}", data.dims)));
                }
                dims[k] = data.len() / known;
            }
            if product(&dims) != Some(data.len()) {
                return Err(err(format!("{:?} does not reshape to {target:?}", data.dims)));
            }
            Ok(Const { dims, values: data.values.clone(), int: data.int, opaque: false })
        }
        "Slice" => {
            let data = input(0)?;
            let rank = data.dims.len();
            let (starts, ends) = if opset < 10 {
                (attr_ints(node, "starts").unwrap_or_default(), attr_ints(node, "ends").unwrap_or_default())
            } else {
                (ints(1)?, ints(2)?)
            };
            let axes = match (opset < 10, inputs.get(3).copied().flatten()) {
                (true, _) => attr_ints(node, "axes"),
                (false, Some(a)) => Some(a.as_ints().ok_or_else(|| err("axes must be int64".into()))?),
                (false, None) => None,
            }
            .unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = match inputs.get(4).copied().flatten() {
                Some(s) => s.as_ints().ok_or_else(|| err("steps must be int64".into()))?,
                None => vec![1; starts.len()],
            };
            if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
                return Err(err("starts, ends, axes and steps differ in length".into()));
            }
            // Per axis: first index, step, count.
            let mut plan: Vec<(i64, i64, usize)> = data.dims.iter().map(|&d| (0, 1, d)).collect();
            for k in 0..starts.len() {
                let a = axis(axes[k], rank)?;
                let (dim, step) = (data.dims[a] as i64, steps[k]);
                if step == 0 {
                    return Err(err("a slice step of 0".into()));
                }
                let clamp = |v: i64, lo: i64, hi: i64| if v < 0 { v.saturating_add(dim).clamp(lo, hi) } else { v.clamp(lo, hi) };
                // In i128: a hostile step of i64::MIN must not overflow; the count is at most `dim`.
                let (first, count) = if step > 0 {
                    let (s, e) = (clamp(starts[k], 0, dim), clamp(ends[k], 0, dim));
                    (s, if e > s { (i128::from(e - s) + i128::from(step) - 1) / i128::from(step) } else { 0 })
                } else {
                    let (s, e) = (clamp(starts[k], -1, dim - 1), clamp(ends[k], -1, dim - 1));
                    (s, if s > e { (i128::from(s - e) - i128::from(step) - 1) / -i128::from(step) } else { 0 })
                };
                plan[a] = (first, step, count as usize);
            }
            let dims: Vec<usize> = plan.iter().map(|p| p.2).collect();
            let st = strides(&data.dims);
            gather(dims, data.int, &data.values, |i| i.iter().zip(&plan).zip(&st).map(|((&i, &(f, s, _)), &t)| (f + i as i64 * s) as usize * t).sum())
        }
        "Transpose" => {
            let data = input(0)?;
            let rank = data.dims.len();
            let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
            let perm = perm.iter().map(|&p| axis(p, rank)).collect::<Result<Vec<_>>>()?;
            let mut seen = perm.clone();
            seen.sort_unstable();
            if seen != (0..rank).collect::<Vec<_>>() {
                return Err(err(format!("perm {perm:?} is not a permutation of {rank} axes")));
            }
            let st = strides(&data.dims);
            let dims = perm.iter().map(|&p| data.dims[p]).collect();
            gather(dims, data.int, &data.values, |i| i.iter().zip(&perm).map(|(&i, &p)| i * st[p]).sum())
        }
        "Cast" => {
            let data = input(0)?;
            match attr_i(node, "to").and_then(|t| i32::try_from(t).ok()) {
                Some(data_type::FLOAT) => Ok(Const { values: data.values.iter().map(|&v| f64::from(v as f32)).collect(), int: false, ..data.clone() }),
                // Shapes and indices (int32 in TensorFlow's files) are held as integers either way.
                Some(data_type::INT64 | data_type::INT32) => Ok(Const { values: data.values.iter().map(|v| v.trunc()).collect(), int: true, ..data.clone() }),
                other => Err(err(format!("a cast to type {other:?} is not folded (only to float, 1, int32, 6, and int64, 7)"))),
            }
        }
        "Unsqueeze" | "Squeeze" => {
            let data = input(0)?;
            let axes = if opset < 13 { attr_ints(node, "axes") } else { inputs.get(1).copied().flatten().and_then(Const::as_ints) };
            let mut dims = data.dims.clone();
            if node.op_type == "Unsqueeze" {
                let mut axes = axes.ok_or_else(|| err("Unsqueeze needs axes".into()))?;
                let rank = dims.len() + axes.len();
                axes.iter_mut().for_each(|a| *a = if *a < 0 { *a + rank as i64 } else { *a });
                axes.sort_unstable();
                for a in axes {
                    let a = usize::try_from(a).ok().filter(|&a| a <= dims.len()).ok_or_else(|| err(format!("axis {a} is out of range")))?;
                    dims.insert(a, 1);
                }
            } else {
                let rank = dims.len();
                let drop = match axes {
                    Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<Result<Vec<_>>>()?,
                    None => (0..rank).filter(|&k| dims[k] == 1).collect(),
                };
                dims = dims.iter().enumerate().filter(|(k, _)| !drop.contains(k)).map(|(_, &d)| d).collect();
            }
            Ok(Const { dims, ..data.clone() })
        }
        "Gather" => {
            let data = input(0)?;
            let indices = input(1)?;
            let index_values = indices.as_ints().ok_or_else(|| err("Gather's indices must be int64".into()))?;
            let ax = axis(attr_i(node, "axis").unwrap_or(0), data.dims.len())?;
            let size = data.dims[ax];
            let index_values =
                index_values.iter().map(|&i| axis(i, size)).collect::<Result<Vec<_>>>().map_err(|_| err(format!("an index of {index_values:?} is outside an axis of {size}")))?;
            let mut dims: Vec<usize> = data.dims[..ax].to_vec();
            dims.extend_from_slice(&indices.dims);
            dims.extend_from_slice(&data.dims[ax + 1..]);
            let st = strides(&data.dims);
            let index_rank = indices.dims.len();
            let index_strides = strides(&indices.dims);
            gather(dims, data.int, &data.values, |i| {
                let picked: usize = i[ax..ax + index_rank].iter().zip(&index_strides).map(|(a, b)| a * b).sum();
                let before: usize = i[..ax].iter().zip(&st).map(|(a, b)| a * b).sum();
                let after: usize = i[ax + index_rank..].iter().zip(&st[ax + 1..]).map(|(a, b)| a * b).sum();
                before + index_values[picked] * st[ax] + after
            })
        }
        "Neg" => {
            let data = input(0)?;
            Ok(Const { values: data.values.iter().map(|v| -v).collect(), ..data.clone() })
        }
        // TensorFlow's "same" padding as timm writes it: ceil(size / stride), then
        // max(padding, 0) as a Clip, on sizes read with Shape.
        "Ceil" | "Floor" => {
            let data = input(0)?;
            let round = if node.op_type == "Ceil" { f64::ceil } else { f64::floor };
            Ok(Const { values: data.values.iter().map(|&v| round(v)).collect(), ..data.clone() })
        }
        "Clip" => {
            let data = input(0)?;
            // Bounds are inputs from opset 11, attributes before; either may be left out.
            let bound = |k: usize, name: &str| -> Result<Option<f64>> {
                match inputs.get(k).copied().flatten() {
                    Some(c) if c.values.len() == 1 => Ok(Some(c.values[0])),
                    Some(c) => Err(err(format!("a Clip bound of shape {:?} is not a single value", c.dims))),
                    None if opset < 11 => Ok(node.attribute.iter().find(|a| a.name == name).map(|a| f64::from(a.f))),
                    None => Ok(None),
                }
            };
            let (lo, hi) = (bound(1, "min")?.unwrap_or(f64::NEG_INFINITY), bound(2, "max")?.unwrap_or(f64::INFINITY));
            Ok(Const { values: data.values.iter().map(|&v| v.max(lo).min(hi)).collect(), ..data.clone() })
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let (a, b) = (input(0)?, input(1)?);
            // Equal shapes, or one side a single value.
            let (dims, len) = match (a.len(), b.len()) {
                (n, m) if a.dims == b.dims || m == 1 => (a.dims.clone(), n.max(m)),
                (1, m) => (b.dims.clone(), m),
                _ => return Err(err(format!("arithmetic on constants of shapes {:?} and {:?} is not folded", a.dims, b.dims))),
            };
            let at = |c: &Const, i: usize| c.values[if c.values.len() == 1 { 0 } else { i }];
            let int = a.int && b.int;
            let values = (0..len)
                .map(|i| {
                    let (x, y) = (at(a, i), at(b, i));
                    match node.op_type.as_str() {
                        "Add" => x + y,
                        "Sub" => x - y,
                        "Mul" => x * y,
                        _ if int && y != 0.0 => (x / y).floor(),
                        _ => x / y,
                    }
                })
                .collect();
            Ok(Const { dims, values, int, opaque: false })
        }
        other => Err(err(format!("{other} is not folded"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, attrs: Vec<super::super::proto::AttributeProto>) -> NodeProto {
        NodeProto { op_type: op.into(), attribute: attrs, ..Default::default() }
    }

    fn ints_attr(name: &str, v: &[i64]) -> super::super::proto::AttributeProto {
        super::super::proto::AttributeProto { name: name.into(), ints: v.to_vec(), ..Default::default() }
    }

    fn int_attr(name: &str, v: i64) -> super::super::proto::AttributeProto {
        super::super::proto::AttributeProto { name: name.into(), i: v, ..Default::default() }
    }

    /// The chain PyTorch's TorchScript exporter writes for `F.pad(x, (1, 2, 3, 4))` (pads given
    /// last axis first, begin/end pairs) ends with ONNX's order: all begins, then all ends.
    #[test]
    fn torchscript_pad_chain_gives_onnx_pads() {
        let c = |dims: Vec<usize>, v: Vec<i64>| Const::ints(dims, v);
        let zeros = fold(&node("ConstantOfShape", vec![]), &[Some(&c(vec![1], vec![4]))], 17).unwrap();
        let zeros = Const { int: true, ..zeros };
        let joined = fold(&node("Concat", vec![int_attr("axis", 0)]), &[Some(&c(vec![4], vec![1, 2, 3, 4])), Some(&zeros)], 17).unwrap();
        let pairs = fold(&node("Reshape", vec![]), &[Some(&joined), Some(&c(vec![2], vec![-1, 2]))], 17).unwrap();
        assert_eq!(pairs.dims, vec![4, 2]);
        // Reverse the rows: starts -1, ends -huge, step -1 along axis 0.
        let rows = fold(
            &node("Slice", vec![]),
            &[Some(&pairs), Some(&c(vec![1], vec![-1])), Some(&c(vec![1], vec![i64::MIN + 1])), Some(&c(vec![1], vec![0])), Some(&c(vec![1], vec![-1]))],
            17,
        )
        .unwrap();
        assert_eq!(rows.as_ints().unwrap(), vec![0, 0, 0, 0, 3, 4, 1, 2]);
        let cols = fold(&node("Transpose", vec![ints_attr("perm", &[1, 0])]), &[Some(&rows)], 17).unwrap();
        let flat = fold(&node("Reshape", vec![]), &[Some(&cols), Some(&c(vec![1], vec![-1]))], 17).unwrap();
        assert_eq!(flat.as_ints().unwrap(), vec![0, 0, 3, 1, 0, 0, 4, 2]);
        let cast = fold(&node("Cast", vec![int_attr("to", 7)]), &[Some(&flat)], 17).unwrap();
        assert_eq!(cast, flat);
    }

    #[test]
    fn gather_squeeze_and_arithmetic() {
        let m = Const::ints(vec![2, 3], vec![1, 2, 3, 4, 5, 6]);
        let g = fold(&node("Gather", vec![int_attr("axis", 1)]), &[Some(&m), Some(&Const::ints(vec![2], vec![2, -3]))], 17).unwrap();
        assert_eq!((g.dims.clone(), g.as_ints().unwrap()), (vec![2, 2], vec![3, 1, 6, 4]));
        let u = fold(&node("Unsqueeze", vec![]), &[Some(&g), Some(&Const::ints(vec![1], vec![0]))], 17).unwrap();
        assert_eq!(u.dims, vec![1, 2, 2]);
        let s = fold(&node("Squeeze", vec![]), &[Some(&u), None], 17).unwrap();
        assert_eq!(s.dims, vec![2, 2]);
        let d = fold(&node("Div", vec![]), &[Some(&Const::ints(vec![2], vec![7, -7])), Some(&Const::ints(vec![], vec![2]))], 17).unwrap();
        assert_eq!(d.as_ints().unwrap(), vec![3, -4]);
        let f = fold(&node("Mul", vec![]), &[Some(&Const::floats(vec![2], vec![0.5, 2.0])), Some(&Const::floats(vec![2], vec![4.0, 3.0]))], 17).unwrap();
        assert_eq!(f.as_floats().unwrap(), vec![2.0, 6.0]);
    }

    /// timm's `pad_same` for a 32-px map, kernel 3, stride 2, as TorchScript writes it:
    /// `max((ceil(32 / 2) - 1) * 2 + 3 - 32, 0)` = 1 (0 on the left, 1 on the right), and the
    /// negative case clipped to 0.
    #[test]
    fn tensorflow_same_padding_folds() {
        let f = |v: &[f32]| Const::floats(vec![v.len()], v.to_vec());
        let ceil = fold(&node("Ceil", vec![]), &[Some(&f(&[16.0, 15.5, -1.5]))], 17).unwrap();
        assert_eq!(ceil.as_floats().unwrap(), vec![16.0, 16.0, -1.0]);
        let floor = fold(&node("Floor", vec![]), &[Some(&f(&[15.5, -1.5]))], 17).unwrap();
        assert_eq!(floor.as_floats().unwrap(), vec![15.0, -2.0]);
        let total = Const::ints(vec![2], vec![1, -2]);
        let zero = Const::ints(vec![], vec![0]);
        let clipped = fold(&node("Clip", vec![]), &[Some(&total), Some(&zero), None], 17).unwrap();
        assert_eq!(clipped.as_ints().unwrap(), vec![1, 0]);
        // Before opset 11 the bounds are attributes.
        let min = super::super::proto::AttributeProto { name: "min".into(), f: 0.0, ..Default::default() };
        let clipped = fold(&node("Clip", vec![min]), &[Some(&f(&[1.0, -2.0]))], 10).unwrap();
        assert_eq!(clipped.as_floats().unwrap(), vec![1.0, 0.0]);
    }

    #[test]
    fn hostile_sizes_are_refused() {
        let huge = Const::ints(vec![2], vec![1 << 20, 1 << 20]);
        let e = fold(&node("ConstantOfShape", vec![]), &[Some(&huge)], 17).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        let e = fold(&node("Transpose", vec![ints_attr("perm", &[0, 0])]), &[Some(&Const::ints(vec![1, 1], vec![0]))], 17).unwrap_err().to_string();
        assert!(e.contains("not a permutation"), "{e}");
        // Extreme slice steps and reshape targets (found by the fuzzer) are values, not overflows.
        let v = Const::ints(vec![3], vec![1, 2, 3]);
        let one = |x: i64| Const::ints(vec![1], vec![x]);
        let sliced = fold(&node("Slice", vec![]), &[Some(&v), Some(&one(2)), Some(&one(i64::MIN)), Some(&one(0)), Some(&one(i64::MIN))], 17).unwrap();
        assert_eq!(sliced.as_ints().unwrap(), vec![3]);
        let sliced = fold(&node("Slice", vec![]), &[Some(&v), Some(&one(0)), Some(&one(i64::MAX)), Some(&one(0)), Some(&one(i64::MAX))], 17).unwrap();
        assert_eq!(sliced.as_ints().unwrap(), vec![1]);
        let e = fold(&node("Reshape", vec![]), &[Some(&v), Some(&Const::ints(vec![3], vec![1 << 40, 1 << 40, -1]))], 17).unwrap_err().to_string();
        assert!(e.contains("does not reshape"), "{e}");
    }
}
