//! Channels-last graphs, as Keras and TensorFlow write them: a bundle exported as ONNX and then
//! rewritten channels last — the input `[N, H, W, C]` transposed to channels first, every ReLU
//! run channels last between two transposes (Keras's torch backend), every flatten reading the
//! map channels last with its dense layer's weight columns in `H, W, C` order (Keras's
//! `Flatten`) — must import as the same bundle, with bit-identical outputs. What the importer
//! cannot read channels last is refused, saying so.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::model::Bundle;
use advlens_shared::onnx::proto::{attribute_type, AttributeProto, ModelProto, NodeProto, TensorProto};
use advlens_shared::onnx::{export, import, ImportOptions};
use advlens_shared::testing::{random_weights, reference_cases, Rng};
use advlens_shared::Tensor;
use prost::Message;

fn transpose(from: &str, to: &str, perm: [i64; 4]) -> NodeProto {
    let perm = AttributeProto { name: "perm".into(), ints: perm.to_vec(), r#type: attribute_type::INTS, ..Default::default() };
    NodeProto { name: format!("{to}_transpose"), op_type: "Transpose".into(), input: vec![from.into()], output: vec![to.into()], attribute: vec![perm], ..Default::default() }
}

fn bundle(case: &str) -> Bundle {
    let (_, spec) = reference_cases().into_iter().find(|(w, _)| w.starts_with(case)).expect("the case");
    Bundle::new(spec.clone(), random_weights(&mut Rng::new(11), &spec)).unwrap()
}

/// `bundle` as ONNX, rewritten channels last (see the module docs).
fn channels_last(bundle: &Bundle) -> ModelProto {
    let mut m = ModelProto::decode(export(bundle).unwrap().as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let input = &mut g.input[0];
    let first = input.name.clone();
    input.name = "nhwc".into();
    let dims = &mut input.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap().dim;
    dims[1..].rotate_left(1);
    let mut nodes = vec![transpose("nhwc", &first, [0, 3, 1, 2])];
    for node in std::mem::take(&mut g.node) {
        match node.op_type.as_str() {
            "Relu" => {
                let (x, y) = (node.input[0].clone(), node.output[0].clone());
                nodes.push(transpose(&x, &format!("{x}_nhwc"), [0, 2, 3, 1]));
                nodes.push(NodeProto { input: vec![format!("{x}_nhwc")], output: vec![format!("{y}_nhwc")], ..node });
                nodes.push(transpose(&format!("{y}_nhwc"), &y, [0, 3, 1, 2]));
            }
            "Flatten" if bundle.shape_of(&node.input[0]).is_some_and(|s| s.len() == 3) => {
                let x = node.input[0].clone();
                nodes.push(transpose(&x, &format!("{x}_nhwc"), [0, 2, 3, 1]));
                nodes.push(NodeProto { input: vec![format!("{x}_nhwc")], ..node });
            }
            _ => nodes.push(node),
        }
    }
    // Each dense layer after such a flatten reads the map's values in H, W, C order.
    for k in 0..nodes.len() {
        if nodes[k].op_type != "Flatten" || !nodes[k].input[0].ends_with("_nhwc") {
            continue;
        }
        let map = nodes[k].input[0].trim_end_matches("_nhwc").to_string();
        let &[c, h, w] = bundle.shape_of(&map).unwrap() else { unreachable!() };
        let flat = nodes[k].output[0].clone();
        let gemm = nodes.iter().find(|n| n.op_type == "Gemm" && n.input[0] == flat).expect("a Gemm after the flatten");
        let weight = g.initializer.iter_mut().find(|t| t.name == gemm.input[1]).unwrap();
        let old = weight.floats().unwrap();
        let features = c * h * w;
        let mut hwc = vec![0.0f32; old.len()];
        for o in 0..old.len() / features {
            for ch in 0..c {
                for p in 0..h * w {
                    hwc[o * features + p * c + ch] = old[o * features + ch * h * w + p];
                }
            }
        }
        *weight = TensorProto { float_data: hwc, raw_data: vec![], ..weight.clone() };
    }
    g.node = nodes;
    m
}

fn import_model(m: &ModelProto) -> advlens_shared::Result<Bundle> {
    import(&m.encode_to_vec(), &ImportOptions { name: "channels-last".into(), ..Default::default() })
}

#[test]
fn channels_last_graphs_import_as_the_same_bundle() {
    // Non-square maps (13x11) catch a swapped H and W; 2 and 3 channels a swapped C.
    for case in ["rgb:", "odd sizes:", "mnist-like:"] {
        let original = bundle(case);
        let back = import_model(&channels_last(&original)).unwrap_or_else(|e| panic!("{case} {e}"));
        assert_eq!(back.input_shape(), original.input_shape(), "{case}");
        assert_eq!(back.spec().input.mean, original.spec().input.mean, "{case}");
        let layout = &back.spec().provenance.extra["imported_from"]["input_layout"];
        assert_eq!(layout, "NHWC (read as NCHW)", "{case}");
        let [c, h, w] = original.input_shape();
        let mut rng = Rng::new(3);
        let x = Tensor::new(vec![2, c, h, w], (0..2 * c * h * w).map(|_| rng.uniform(0.0, 1.0)).collect()).unwrap();
        let want = CpuEngine::new(Arc::new(original)).forward(&x).unwrap();
        let got = CpuEngine::new(Arc::new(back)).forward(&x).unwrap();
        assert_eq!(got.data(), want.data(), "{case}");
    }
}

#[test]
fn what_cannot_be_read_channels_last_is_refused() {
    let model = channels_last(&bundle("rgb:"));
    let refused = |edit: &dyn Fn(&mut Vec<NodeProto>, &mut Vec<TensorProto>), says: &str| {
        let mut m = model.clone();
        let g = m.graph.as_mut().unwrap();
        edit(&mut g.node, &mut g.initializer);
        let e = import_model(&m).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(says), "`{says}` missing from: {e}");
    };
    let relu = |nodes: &Vec<NodeProto>| nodes.iter().position(|n| n.op_type == "Relu").unwrap();
    // The ReLU's channels-last output read by a convolution (the transpose back left out).
    refused(
        &|nodes, _| {
            let k = relu(nodes);
            let back = nodes.remove(k + 1);
            nodes.iter_mut().filter(|n| n.input.first() == Some(&back.output[0])).for_each(|n| n.input[0] = back.input[0].clone());
        },
        "laid out channels last",
    );
    // A channels-last value added to a channels-first one.
    refused(
        &|nodes, _| {
            let k = relu(nodes);
            let (view, map) = (nodes[k].output[0].clone(), nodes[k - 1].input[0].clone());
            nodes.insert(k + 1, NodeProto { op_type: "Add".into(), input: vec![view.clone(), map], output: vec!["mixed".into()], ..Default::default() });
            nodes[k + 2].input[0] = "mixed".into();
        },
        "mixes channels-last values with",
    );
    // A constant along H, not along the channels.
    refused(
        &|nodes, init| {
            let k = relu(nodes);
            let view = nodes[k].output[0].clone();
            init.push(TensorProto { name: "rows".into(), dims: vec![1, 16, 1, 1], data_type: 1, float_data: vec![2.0; 16], ..Default::default() });
            nodes.insert(k + 1, NodeProto { op_type: "Mul".into(), input: vec![view, "rows".into()], output: vec!["scaled".into()], ..Default::default() });
            nodes[k + 2].input[0] = "scaled".into();
        },
        "does not run along the channels",
    );
    // A softmax inside the network.
    refused(
        &|nodes, _| {
            let k = relu(nodes);
            let y = nodes[k].output[0].clone();
            nodes.insert(k + 1, NodeProto { op_type: "Softmax".into(), input: vec![y.clone()], output: vec!["soft".into()], ..Default::default() });
            nodes[k + 2].input[0] = "soft".into();
        },
        "supported only as the last op",
    );
}
