//! Bundle -> ONNX -> bundle: every reference case (all layer types) comes back with the same
//! weights, the same class names and mean/std, the same layer names (dropout aside, which ONNX
//! readers drop) and bit-identical outputs on the CPU engine.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use advlens_shared::engine::cpu::CpuEngine;
use advlens_shared::model::{Bundle, Op};
use advlens_shared::onnx::{export, import, ImportOptions};
use advlens_shared::testing::{random_weights, reference_cases, Rng};
use advlens_shared::Tensor;

#[test]
fn every_reference_case_round_trips_through_onnx() {
    let mut rng = Rng::new(5);
    for (what, mut spec) in reference_cases() {
        spec.input.mean = vec![0.25; spec.input.channels];
        spec.input.std = vec![0.5; spec.input.channels];
        let weights = random_weights(&mut rng, &spec);
        let bundle = Bundle::new(spec.clone(), weights).unwrap();
        let bytes = export(&bundle).unwrap();
        let back = import(&bytes, &ImportOptions { name: spec.name.clone(), ..Default::default() }).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(back.weights(), bundle.weights(), "{what}: weights");
        assert_eq!(back.classes(), bundle.classes(), "{what}: class names");
        assert_eq!((&back.spec().input.mean, &back.spec().input.std), (&spec.input.mean, &spec.input.std), "{what}: normalisation");
        let layers = |b: &Bundle| b.spec().nodes.iter().filter(|n| n.op != Op::Dropout).map(|n| (n.name.clone(), n.op.clone())).collect::<Vec<_>>();
        assert_eq!(layers(&back), layers(&bundle), "{what}: layers");
        let [c, h, w] = bundle.input_shape();
        let x = Tensor::new(vec![2, c, h, w], (0..2 * c * h * w).map(|i| ((i * 37) % 101) as f32 / 100.0).collect()).unwrap();
        let (a, b) = (CpuEngine::new(Arc::new(bundle)).forward(&x).unwrap(), CpuEngine::new(Arc::new(back)).forward(&x).unwrap());
        assert_eq!(a.data(), b.data(), "{what}: outputs");
    }
}

/// A mean and std given at import (`--mean/--std`, the page's pixel choice) are recorded, since
/// the file cannot say them; without them nothing is recorded.
#[test]
fn a_normalisation_given_at_import_is_recorded() {
    let (_, spec) = reference_cases().into_iter().next().unwrap();
    let bundle = Bundle::new(spec.clone(), random_weights(&mut Rng::new(2), &spec)).unwrap();
    let bytes = export(&bundle).unwrap();
    let c = spec.input.channels;
    let options = ImportOptions { name: "n".into(), mean: Some(vec![0.5; c]), std: Some(vec![0.25; c]), ..Default::default() };
    let given = import(&bytes, &options).unwrap();
    let recorded = &given.spec().provenance.extra["imported_from"]["normalisation"];
    assert_eq!(recorded["mean"], serde_json::json!(vec![0.5; c]), "{recorded}");
    assert_eq!(recorded["std"], serde_json::json!(vec![0.25; c]), "{recorded}");
    let plain = import(&bytes, &ImportOptions { name: "n".into(), ..Default::default() }).unwrap();
    assert!(plain.spec().provenance.extra["imported_from"].get("normalisation").is_none());
}

/// A channel split written as ONNX `Split` reads back as the same slices; a slice or split the
/// layers cannot express is refused, saying why.
#[test]
fn channel_splits_read_back_and_other_slices_are_refused() {
    use advlens_shared::onnx::proto::{attribute_type, AttributeProto, ModelProto, NodeProto, TensorProto};
    use prost::Message;
    let (what, spec) = reference_cases().into_iter().find(|(w, _)| w.starts_with("channel slices")).expect("the slice case");
    let bundle = Bundle::new(spec.clone(), random_weights(&mut Rng::new(6), &spec)).unwrap();
    let model = ModelProto::decode(export(&bundle).unwrap().as_slice()).unwrap();
    let import_edited = |edit: &dyn Fn(&mut ModelProto)| {
        let mut m = model.clone();
        edit(&mut m);
        import(&m.encode_to_vec(), &ImportOptions { name: spec.name.clone(), ..Default::default() })
    };
    let ints = |name: &str, v: Vec<i64>| AttributeProto { name: name.into(), ints: v, r#type: attribute_type::INTS, ..Default::default() };
    let int = |name: &str, v: i64| AttributeProto { name: name.into(), i: v, r#type: attribute_type::INT, ..Default::default() };
    let slice_node = |m: &ModelProto, out: &str| m.graph.as_ref().unwrap().node.iter().position(|n| n.op_type == "Slice" && n.output[0] == out).unwrap();
    // `passed` (channels 0..2) and `rest` (2..6) as one Split.
    let as_split = |split: Vec<i64>, axis: i64| {
        move |m: &mut ModelProto| {
            let (a, b) = (slice_node(m, "passed"), slice_node(m, "rest"));
            let g = m.graph.as_mut().unwrap();
            let x = g.node[a].input[0].clone();
            g.node[a] = NodeProto { name: "split".into(), op_type: "Split".into(), input: vec![x], output: vec!["passed".into(), "rest".into()], attribute: vec![ints("split", split.clone()), int("axis", axis)], ..Default::default() };
            g.node.remove(b);
        }
    };
    let back = import_edited(&as_split(vec![2, 4], 1)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let slices = |b: &Bundle| b.spec().nodes.iter().filter_map(|n| match n.op { Op::SliceChannels { start, end } => Some((start, end)), _ => None }).collect::<Vec<_>>();
    assert_eq!(slices(&back), slices(&bundle), "the split's parts are the original slices");
    let [c, h, w] = bundle.input_shape();
    let x = Tensor::new(vec![1, c, h, w], (0..c * h * w).map(|i| (i % 7) as f32 / 7.0).collect()).unwrap();
    assert_eq!(CpuEngine::new(Arc::new(back)).forward(&x).unwrap().data(), CpuEngine::new(Arc::new(bundle.clone())).forward(&x).unwrap().data());

    let refused = |edit: &dyn Fn(&mut ModelProto), says: &str| {
        let e = import_edited(edit).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(says), "`{says}` missing from: {e}");
    };
    refused(&as_split(vec![2, 3], 1), "splits 6 channels into [2, 3] for 2 outputs");
    refused(&as_split(vec![2, 4], 2), "a Split along axis 2 is supported only along the channels");
    let edit_slice = |input: usize, values: Vec<i64>| {
        move |m: &mut ModelProto| {
            let k = slice_node(m, "middle");
            let g = m.graph.as_mut().unwrap();
            let name = format!("edited{input}");
            g.initializer.push(TensorProto { name: name.clone(), dims: vec![values.len() as i64], data_type: 7, int64_data: values.clone(), ..Default::default() });
            g.node[k].input.resize(5, String::new());
            g.node[k].input[input] = name;
        }
    };
    refused(&edit_slice(4, vec![2]), "a Slice with step 2 is supported only with step 1");
    refused(&edit_slice(3, vec![2]), "a Slice along axis 2 (1..4 of 7) is supported only along the channels");
}

/// A graph with inputs besides the image is refused naming them; when they are a Keras
/// `Normalization` layer's mean and variance (Keras's TensorFlow export writes them as inputs
/// without values), the message says how to export the model instead.
#[test]
fn extra_graph_inputs_are_refused_and_kerass_lost_normalization_is_explained() {
    use advlens_shared::onnx::proto::{ModelProto, ValueInfoProto};
    use prost::Message;
    let (_, spec) = reference_cases().into_iter().next().unwrap();
    let bundle = Bundle::new(spec.clone(), random_weights(&mut Rng::new(3), &spec)).unwrap();
    let with_inputs = |names: &[&str]| {
        let mut model = ModelProto::decode(export(&bundle).unwrap().as_slice()).unwrap();
        let graph = model.graph.as_mut().unwrap();
        for name in names {
            graph.input.push(ValueInfoProto { name: name.to_string(), ..graph.input[0].clone() });
        }
        let e = import(&model.encode_to_vec(), &ImportOptions { name: "n".into(), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains(&format!("the graph has {} inputs", names.len() + 1)) && names.iter().all(|n| e.contains(n)), "{e}");
        e
    };
    let plain = with_inputs(&["second_image"]);
    assert!(plain.ends_with("advlens models take one image batch"), "{plain}");
    let keras = with_inputs(&["functional_1/normalization_1/Sub/y:0", "functional_1/normalization_1/Sqrt/x:0"]);
    assert!(keras.contains("`Normalization` layer") && keras.contains("KERAS_BACKEND=torch") && keras.contains("Rescaling"), "{keras}");
}
