//! Loading is validating: every malformed bundle gets a precise error, never a panic.
#![cfg(not(target_arch = "wasm32"))]

use advlens_shared::model::{parse_weights, Bundle, Op};
use advlens_shared::testing::{chain_spec, random_weights, reference_cases, Rng};
use advlens_shared::{Error, Tensor};

fn valid() -> (Vec<u8>, Vec<u8>) {
    let (_, spec) = reference_cases().remove(0);
    let weights = random_weights(&mut Rng::new(1), &spec);
    Bundle::new(spec, weights).unwrap().to_bytes().unwrap()
}

fn with_json(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Bundle, Error> {
    let (json, weights) = valid();
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    edit(&mut v);
    Bundle::from_bytes(&serde_json::to_vec(&v).unwrap(), &weights)
}

fn message(r: Result<Bundle, Error>) -> String {
    r.expect_err("the bundle must be rejected").to_string()
}

#[test]
fn round_trips_through_bytes_and_files() {
    let (json, weights) = valid();
    let bundle = Bundle::from_bytes(&json, &weights).unwrap();
    let dir = tempfile::tempdir().unwrap();
    bundle.save(dir.path()).unwrap();
    let again = Bundle::load(dir.path()).unwrap();
    assert_eq!(again.spec(), bundle.spec());
    assert_eq!(again.weights(), bundle.weights());
    assert_eq!(again.shape_of("linear7"), Some(&[10][..]));
}

#[test]
fn single_file_form_round_trips_and_plain_weights_are_refused() {
    let (json, weights) = valid();
    let bundle = Bundle::from_bytes(&json, &weights).unwrap();
    let single = bundle.to_single_file().unwrap();
    let again = Bundle::from_single_file(&single).unwrap();
    assert_eq!(again.spec(), bundle.spec());
    assert_eq!(again.weights(), bundle.weights());
    let m = Bundle::from_single_file(&weights).unwrap_err().to_string();
    assert!(m.contains("model.json"), "{m}");
    assert_eq!(Bundle::single_file_samples(&single).unwrap(), None);
    // With sample images: the same bundle, and the samples' bytes back as given.
    let samples = br#"{"dataset":"toy","split":"test","shape":[1,2,2],"samples":[{"index":4,"label":1,"pixels":[0,64,128,255],"reference":{"predicted":0,"probabilities":[0.75,0.25]}}]}"#;
    let with = bundle.to_single_file_with_samples(samples).unwrap();
    assert_eq!(Bundle::from_single_file(&with).unwrap().weights(), bundle.weights());
    assert_eq!(Bundle::single_file_samples(&with).unwrap().as_deref(), Some(&samples[..]));
    assert!(bundle.to_single_file_with_samples(br#"{"dataset":"toy","split":"test","shape":[1,2,2],"samples":[{"index":0,"label":0,"pixels":[1],"reference":{"predicted":0,"probabilities":[1.0]}}]}"#).is_err(), "samples are checked");
}

#[test]
fn rejects_other_formats_and_versions() {
    assert!(message(with_json(|v| v["format"] = "onnx".into())).contains("not an advlens model bundle"));
    let m = message(with_json(|v| v["version"] = 2.into()));
    assert!(m.contains("v2") && m.contains("advlens export"), "{m}");
    assert!(matches!(Bundle::from_bytes(b"{not json", &valid().1), Err(Error::SpecJson { .. })));
}

#[test]
fn class_hierarchy_round_trips_and_cycles_are_refused() {
    let ok = with_json(|v| v["hierarchy"] = serde_json::json!({"class 0": "even", "class 2": "even", "even": "number"})).unwrap();
    assert_eq!(ok.spec().hierarchy["class 2"], "even");
    let (json, _) = ok.to_bytes().unwrap();
    assert!(String::from_utf8(json).unwrap().contains("\"hierarchy\""));
    let m = message(with_json(|v| v["hierarchy"] = serde_json::json!({"class 0": "a", "a": "b", "b": "class 0"})));
    assert!(m.contains("cycle"), "{m}");
    assert!(message(with_json(|v| v["classes"][1] = "class 0".into())).contains("listed twice"));
}

#[test]
fn rejects_unknown_ops_instead_of_skipping_them() {
    let m = message(with_json(|v| v["nodes"][1]["op"] = "swish_gelu_tanh".into()));
    assert!(m.contains("swish_gelu_tanh"), "{m}");
}

#[test]
fn rejects_unknown_node_fields_naming_node_and_field() {
    // A transposed or reflect-padded convolution read as a plain one would run and give wrong results.
    for (node, field, value) in [(0, "padding_mode", 1), (0, "output_padding", 1), (1, "inplace", 1), (2, "ceil_mode", 1)] {
        let m = message(with_json(|v| v["nodes"][node][field] = value.into()));
        let name = valid_node_name(node);
        assert!(m.contains(&format!("node `{name}`")) && m.contains(&format!("`{field}`")), "{m}");
    }
}

#[test]
fn dilation_must_be_positive_and_fit_the_input() {
    let m = message(with_json(|v| v["nodes"][0]["dilation"] = 0.into()));
    assert!(m.contains("node `conv2d0`") && m.contains("dilation 0"), "{m}");
    let m = message(with_json(|v| v["nodes"][0]["dilation"] = 100.into()));
    assert!(m.contains("node `conv2d0`") && m.contains("do not fit"), "{m}");
}

#[test]
fn concat_needs_feature_maps_of_one_size() {
    // The input is 28x28, the first pool's output 14x14.
    let m = message(with_json(|v| {
        let nodes = v["nodes"].as_array_mut().unwrap();
        let pool = nodes[2]["name"].clone();
        nodes.insert(3, serde_json::json!({"name": "joined", "op": "concat", "inputs": ["input", pool]}));
    }));
    assert!(m.contains("node `joined` (concat)") && m.contains("one height and width"), "{m}");
    let m = message(with_json(|v| v["nodes"].as_array_mut().unwrap().insert(0, serde_json::json!({"name": "alone", "op": "concat", "inputs": ["input"]}))));
    assert!(m.contains("node `alone` (concat) takes 2 to 64 input(s), found 1"), "{m}");
}

#[test]
fn groups_must_divide_both_channel_counts() {
    // conv2d0 maps 1 channel to 8: 2 groups cannot split one input channel.
    let m = message(with_json(|v| v["nodes"][0]["groups"] = 2.into()));
    assert!(m.contains("node `conv2d0`") && m.contains("groups 2 must divide in_channels 1"), "{m}");
}

fn valid_node_name(i: usize) -> String {
    let (json, _) = valid();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["nodes"][i]["name"].as_str().unwrap().to_string()
}

#[test]
fn rejects_dangling_inputs_duplicates_and_bad_output() {
    assert!(message(with_json(|v| v["nodes"][2]["inputs"][0] = "nowhere".into())).contains("`nowhere`"));
    // A node reading a later node is a cycle or a forward reference: both are refused.
    assert!(message(with_json(|v| v["nodes"][0]["inputs"][0] = "relu1".into())).contains("not the input nor a node defined before it"));
    assert!(message(with_json(|v| v["nodes"][1]["name"] = "conv2d0".into())).contains("used twice"));
    assert!(message(with_json(|v| v["output"] = "relu1".into())).contains("classes"));
    assert!(message(with_json(|v| v["classes"].as_array_mut().unwrap().pop().map(drop).unwrap())).contains("9 classes"));
}

#[test]
fn rejects_inconsistent_layer_parameters() {
    let m = message(with_json(|v| v["nodes"][3]["in_channels"] = 3.into()));
    assert!(m.contains("in_channels is 3") && m.contains("8 channels"), "{m}");
    assert!(message(with_json(|v| v["nodes"][0]["stride"] = 0.into())).contains("do not fit"));
    assert!(message(with_json(|v| v["nodes"][7]["in_features"] = 5.into())).contains("linear"));
}

#[test]
fn rejects_absurd_sizes_before_allocating() {
    let m = message(with_json(|v| v["input"]["height"] = 1_000_000_000u64.into()));
    assert!(m.contains("too large"), "{m}");
    let m = message(with_json(|v| v["nodes"][3]["out_channels"] = (1u64 << 40).into()));
    assert!(m.contains("too large"), "{m}");
}

#[test]
fn rejects_missing_extra_misshapen_and_non_finite_weights() {
    let (_, spec) = reference_cases().remove(0);
    let base = random_weights(&mut Rng::new(2), &spec);

    let mut w = base.clone();
    w.remove("conv2d3.bias");
    let m = message(Bundle::new(spec.clone(), w));
    assert!(m.contains("conv2d3.bias") && m.contains("missing"), "{m}");

    let mut w = base.clone();
    w.insert("stray.weight".into(), Tensor::zeros(vec![2]));
    assert!(message(Bundle::new(spec.clone(), w)).contains("stray.weight"));

    let mut w = base.clone();
    w.insert("linear7.bias".into(), Tensor::zeros(vec![11]));
    let m = message(Bundle::new(spec.clone(), w));
    assert!(m.contains("[11]") && m.contains("[10]"), "{m}");

    let mut w = base.clone();
    w.get_mut("conv2d0.weight").unwrap().data_mut()[5] = f32::NAN;
    assert!(message(Bundle::new(spec.clone(), w.clone())).contains("not finite"));
    // The same NaN inside a safetensors file is caught by the parser.
    let mut ok = base.clone();
    ok.get_mut("conv2d0.weight").unwrap().data_mut()[5] = 0.0;
    let (_, bytes) = Bundle::new(spec, ok).unwrap().to_bytes().unwrap();
    let mut bytes = bytes;
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::INFINITY.to_le_bytes());
    assert!(parse_weights(&bytes).unwrap_err().to_string().contains("not finite"));
}

#[test]
fn rejects_garbage_and_truncated_weight_files() {
    let (json, weights) = valid();
    assert!(matches!(Bundle::from_bytes(&json, b"garbage"), Err(Error::Weights(_))));
    assert!(matches!(Bundle::from_bytes(&json, &weights[..weights.len() / 2]), Err(Error::Weights(_) | Error::Tensor { .. })));
    assert!(matches!(Bundle::from_bytes(&json, &[]), Err(Error::Weights(_))));
    // Cut inside the data: the message names the first tensor whose bytes are missing.
    let header = 8 + u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let m = Bundle::from_bytes(&json, &weights[..header + 40]).unwrap_err().to_string();
    assert!(m.starts_with("tensor `") && m.contains("past the end"), "{m}");
    // Bytes after the last tensor.
    let mut longer = weights.clone();
    longer.extend([0u8; 12]);
    let m = Bundle::from_bytes(&json, &longer).unwrap_err().to_string();
    assert!(m.contains("12 bytes follow the last tensor"), "{m}");
}

#[test]
fn load_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(m.contains("model.json"), "{m}");
}

#[test]
fn wrong_input_shapes_are_errors() {
    let spec = chain_spec([1, 4, 4], vec![Op::Flatten, Op::Linear { in_features: 16, out_features: 2 }], 2);
    let weights = random_weights(&mut Rng::new(3), &spec);
    let engine = advlens_shared::engine::cpu::CpuEngine::new(std::sync::Arc::new(Bundle::new(spec, weights).unwrap()));
    let m = engine.forward(&Tensor::zeros(vec![1, 1, 5, 4])).unwrap_err().to_string();
    assert!(m.contains("[N, 1, 4, 4]") && m.contains("[1, 1, 5, 4]"), "{m}");
    assert!(engine.forward(&Tensor::zeros(vec![0, 1, 4, 4])).is_err());
}
