//! Bundle to ONNX: every bundle layer as the ONNX op that computes it (opset 17), the input's
//! mean and std as a leading `Sub` / `Div`, the class names in the model's metadata. What
//! [`super::import`] reads back gives the same tensors; onnxruntime runs it with the engines'
//! outputs (trainer/tests/onnx_import.rs).

use prost::Message;

use super::proto::{
    attribute_type, data_type, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};
use crate::model::{Bundle, Op, INPUT_NAME};
use crate::Result;

/// The opset the writer targets.
pub const EXPORT_OPSET: i64 = 17;
/// Metadata key holding the class names (a JSON list), read back by the importer.
pub const CLASSES_KEY: &str = "advlens.classes";

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: values.iter().map(|&v| v as i64).collect(), r#type: attribute_type::INTS, ..Default::default() }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: value, r#type: attribute_type::INT, ..Default::default() }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: value.as_bytes().to_vec(), r#type: attribute_type::STRING, ..Default::default() }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: value, r#type: attribute_type::FLOAT, ..Default::default() }
}

fn tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto { name: name.into(), op_type: op.into(), input: inputs.iter().map(|s| s.to_string()).collect(), output: vec![output.into()], attribute, ..Default::default() }
}

/// A float tensor value with a symbolic batch axis followed by `dims`.
fn value(name: &str, dims: &[usize]) -> ValueInfoProto {
    let mut dim = vec![Dimension { dim_value: None, dim_param: Some("batch".into()) }];
    dim.extend(dims.iter().map(|&d| Dimension { dim_value: Some(d as i64), dim_param: None }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { tensor_type: Some(TensorTypeProto { elem_type: data_type::FLOAT, shape: Some(TensorShapeProto { dim }) }) }),
    }
}

/// The bundle as the bytes of an ONNX model.
pub fn export(bundle: &Bundle) -> Result<Vec<u8>> {
    let spec = bundle.spec();
    let [c, h, w] = bundle.input_shape();
    let mut graph = GraphProto { name: spec.name.clone(), ..Default::default() };
    let normalised = spec.input.mean.iter().any(|&m| m != 0.0) || spec.input.std.iter().any(|&s| s != 1.0);
    let image = if normalised { "image" } else { INPUT_NAME };
    graph.input.push(value(image, &[c, h, w]));
    if normalised {
        graph.initializer.push(tensor("input.mean", &[1, c, 1, 1], &spec.input.mean));
        graph.initializer.push(tensor("input.std", &[1, c, 1, 1], &spec.input.std));
        graph.node.push(node("input_sub", "Sub", &["image", "input.mean"], "input.centred", vec![]));
        graph.node.push(node("input_div", "Div", &["input.centred", "input.std"], INPUT_NAME, vec![]));
    }
    for n in &spec.nodes {
        let x: Vec<&str> = n.inputs.iter().map(String::as_str).collect();
        let name = n.name.as_str();
        let param = |leaf: &str| format!("{name}.{leaf}");
        for (weight, shape) in n.op.weight_shapes(name) {
            graph.initializer.push(tensor(&weight, &shape, bundle.weight(&weight).data()));
        }
        let window = |kernel: usize, stride: usize, padding: usize| vec![ints("kernel_shape", &[kernel, kernel]), ints("strides", &[stride, stride]), ints("pads", &[padding; 4])];
        match n.op {
            Op::Conv2d { kernel, stride, padding, groups, dilation, .. } => {
                let mut attrs = window(kernel, stride, padding);
                attrs.extend([ints("dilations", &[dilation, dilation]), int("group", groups as i64)]);
                graph.node.push(node(name, "Conv", &[x[0], &param("weight"), &param("bias")], name, attrs));
            }
            Op::ConvTranspose2d { kernel, stride, padding, output_padding, groups, dilation, .. } => {
                let mut attrs = window(kernel, stride, padding);
                attrs.extend([ints("dilations", &[dilation, dilation]), int("group", groups as i64), ints("output_padding", &[output_padding, output_padding])]);
                graph.node.push(node(name, "ConvTranspose", &[x[0], &param("weight"), &param("bias")], name, attrs));
            }
            Op::Relu => graph.node.push(node(name, "Relu", &x, name, vec![])),
            Op::Sigmoid => graph.node.push(node(name, "Sigmoid", &x, name, vec![])),
            Op::LeakyRelu { alpha } => graph.node.push(node(name, "LeakyRelu", &x, name, vec![float("alpha", alpha)])),
            Op::Concat => graph.node.push(node(name, "Concat", &x, name, vec![int("axis", 1)])),
            Op::HardSigmoid { alpha, beta } => graph.node.push(node(name, "HardSigmoid", &x, name, vec![float("alpha", alpha), float("beta", beta)])),
            Op::HardSwish => graph.node.push(node(name, "HardSwish", &x, name, vec![])),
            Op::Mul if bundle.shape_of(x[0]) == bundle.shape_of(x[1]) => graph.node.push(node(name, "Mul", &x, name, vec![])),
            Op::Mul => {
                // ONNX broadcasts from the right: the [N, C] gate becomes [N, C, 1, 1] first.
                let gate = format!("{name}.gate");
                graph.initializer.push(TensorProto { name: param("axes"), dims: vec![2], data_type: data_type::INT64, int64_data: vec![2, 3], ..Default::default() });
                graph.node.push(node(&format!("{name}_unsqueeze"), "Unsqueeze", &[x[1], &param("axes")], &gate, vec![]));
                graph.node.push(node(name, "Mul", &[x[0], &gate], name, vec![]));
            }
            Op::MaxPool2d { kernel, stride, padding } => graph.node.push(node(name, "MaxPool", &x, name, window(kernel, stride, padding))),
            Op::AvgPool2d { kernel, stride, padding } => {
                let mut attrs = window(kernel, stride, padding);
                attrs.push(int("count_include_pad", 1));
                graph.node.push(node(name, "AveragePool", &x, name, attrs));
            }
            Op::GlobalAvgPool => {
                // ONNX keeps the 1x1 spatial axes; the bundle's layer drops them.
                let pooled = format!("{name}.pooled");
                graph.node.push(node(name, "GlobalAveragePool", &x, &pooled, vec![]));
                graph.node.push(node(&format!("{name}_flatten"), "Flatten", &[&pooled], name, vec![int("axis", 1)]));
            }
            Op::Flatten => graph.node.push(node(name, "Flatten", &x, name, vec![int("axis", 1)])),
            Op::Linear { .. } => graph.node.push(node(name, "Gemm", &[x[0], &param("weight"), &param("bias")], name, vec![int("transB", 1)])),
            Op::BatchNorm2d { eps, .. } => {
                let inputs = [x[0], &param("weight"), &param("bias"), &param("running_mean"), &param("running_var")];
                graph.node.push(node(name, "BatchNormalization", &inputs, name, vec![float("epsilon", eps)]));
            }
            Op::Upsample2d { scale } => {
                // Opset 13 and later: X, roi (empty), scales. Nearest with floor of the asymmetric
                // coordinate is y[i] = x[i / s], PyTorch's Upsample(mode="nearest").
                let scales = [1.0, 1.0, scale as f32, scale as f32];
                graph.initializer.push(tensor(&param("scales"), &[4], &scales));
                let attrs = vec![string("mode", "nearest"), string("coordinate_transformation_mode", "asymmetric"), string("nearest_mode", "floor")];
                graph.node.push(node(name, "Resize", &[x[0], "", &param("scales")], name, attrs));
            }
            Op::ResizeBilinear { scale, align_corners } => {
                let scales = [1.0, 1.0, scale as f32, scale as f32];
                graph.initializer.push(tensor(&param("scales"), &[4], &scales));
                // PyTorch writes pytorch_half_pixel; for an output of more than one pixel (always,
                // upsampling) it is half_pixel.
                let coordinates = if align_corners { "align_corners" } else { "half_pixel" };
                let attrs = vec![string("mode", "linear"), string("coordinate_transformation_mode", coordinates)];
                graph.node.push(node(name, "Resize", &[x[0], "", &param("scales")], name, attrs));
            }
            Op::Pad2d { top, left, bottom, right } => {
                // Opset 11 and later take the pads as an input: begins then ends, axes N C H W.
                let pads = [0, 0, top, left, 0, 0, bottom, right].map(|v| v as i64).to_vec();
                graph.initializer.push(TensorProto { name: param("pads"), dims: vec![8], data_type: data_type::INT64, int64_data: pads, ..Default::default() });
                graph.node.push(node(name, "Pad", &[x[0], &param("pads")], name, vec![]));
            }
            Op::SliceChannels { start, end } => {
                // Opset 10 and later take starts, ends and axes as inputs.
                let int64 = |leaf: &str, v: i64| TensorProto { name: param(leaf), dims: vec![1], data_type: data_type::INT64, int64_data: vec![v], ..Default::default() };
                graph.initializer.extend([int64("starts", start as i64), int64("ends", end as i64), int64("axes", 1)]);
                graph.node.push(node(name, "Slice", &[x[0], &param("starts"), &param("ends"), &param("axes")], name, vec![]));
            }
            Op::Gelu => {
                // Opset 17 has no Gelu: x (1 + erf(x / sqrt(2))) / 2, as PyTorch writes it there.
                graph.initializer.extend([tensor(&param("sqrt2"), &[], &[std::f32::consts::SQRT_2]), tensor(&param("one"), &[], &[1.0]), tensor(&param("half"), &[], &[0.5])]);
                let (scaled, erf, shifted, product) = (param("scaled"), param("erf"), param("shifted"), param("product"));
                graph.node.push(node(&format!("{name}_div"), "Div", &[x[0], &param("sqrt2")], &scaled, vec![]));
                graph.node.push(node(&format!("{name}_erf"), "Erf", &[&scaled], &erf, vec![]));
                graph.node.push(node(&format!("{name}_add"), "Add", &[&erf, &param("one")], &shifted, vec![]));
                graph.node.push(node(&format!("{name}_mul"), "Mul", &[x[0], &shifted], &product, vec![]));
                graph.node.push(node(name, "Mul", &[&product, &param("half")], name, vec![]));
            }
            Op::ChannelNorm { eps, .. } => {
                let attrs = vec![int("axis", -1), float("epsilon", eps)];
                if bundle.shape_of(x[0]).is_some_and(|s| s.len() == 3) {
                    // LayerNormalization normalises the last axes: channels last, then back.
                    let (last, normed) = (param("channels_last"), param("normed"));
                    graph.node.push(node(&format!("{name}_to_nhwc"), "Transpose", &[x[0]], &last, vec![ints("perm", &[0, 2, 3, 1])]));
                    // The LayerNormalization node carries the layer's name: an import names the
                    // layer after it.
                    graph.node.push(node(name, "LayerNormalization", &[&last, &param("weight"), &param("bias")], &normed, attrs));
                    graph.node.push(node(&format!("{name}_to_nchw"), "Transpose", &[&normed], name, vec![ints("perm", &[0, 3, 1, 2])]));
                } else {
                    graph.node.push(node(name, "LayerNormalization", &[x[0], &param("weight"), &param("bias")], name, attrs));
                }
            }
            Op::InstanceNorm { eps, .. } => graph.node.push(node(name, "InstanceNormalization", &[x[0], &param("weight"), &param("bias")], name, vec![float("epsilon", eps)])),
            Op::Add => graph.node.push(node(name, "Add", &x, name, vec![])),
            Op::Dropout => graph.node.push(node(name, "Identity", &x, name, vec![])),
            Op::Clip { min, max } => {
                // Opset 11 and later take the bounds as scalar inputs.
                graph.initializer.push(tensor(&param("min"), &[], &[min]));
                graph.initializer.push(tensor(&param("max"), &[], &[max]));
                graph.node.push(node(name, "Clip", &[x[0], &param("min"), &param("max")], name, vec![]));
            }
        }
    }
    graph.output.push(value(&spec.output, &[spec.classes.len()]));
    let classes = serde_json::to_string(&spec.classes).map_err(|e| crate::Error::Onnx(e.to_string()))?;
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: EXPORT_OPSET }],
        producer_name: "advlens".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: vec![StringStringEntryProto { key: CLASSES_KEY.into(), value: classes }],
        functions: vec![],
    };
    Ok(model.encode_to_vec())
}
