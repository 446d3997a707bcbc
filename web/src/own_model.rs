//! A visitor's own model: a single-file bundle (`advlens pack`) or an ONNX file (imported by
//! `shared::onnx`, pixels fed as [0, 1] values) picked from the disk or named by `?bundle=URL`. Checked against the page's limits before it is built, loaded in the worker
//! like the bundled models, and shown with its model card; its sample images travel inside the
//! file (without them the visitor draws or uploads an image).

use advlens_shared::model::{Bundle, ModelSpec, SampleSet};

use crate::error::AppError;
use crate::onnx_choices::OnnxChoices;

/// The largest file the page opens (the weights are copied once into the engine).
pub const MAX_BYTES: u64 = 100_000_000;
/// The most weights a model may have (25 M floats: 100 MB).
pub const MAX_PARAMETERS: usize = 25_000_000;
/// The largest input side (a 512 x 512 image; ImageNet models take 224).
pub const MAX_INPUT_SIDE: usize = 512;

/// The limits in one sentence, for the page.
pub fn limits_text() -> String {
    format!("at most {} MB, {} million weights, and inputs of 1 or 3 channels up to {MAX_INPUT_SIDE} × {MAX_INPUT_SIDE} pixels", MAX_BYTES / 1_000_000, MAX_PARAMETERS / 1_000_000)
}

/// What is wrong with a model the page would open, before anything is allocated for it.
pub fn check_limits(spec: &ModelSpec) -> Result<(), String> {
    let i = &spec.input;
    if i.channels != 1 && i.channels != 3 {
        return Err(format!("it takes images with {} channels; the page shows 1 (grey) or 3 (colour)", i.channels));
    }
    if i.height > MAX_INPUT_SIDE || i.width > MAX_INPUT_SIDE {
        return Err(format!("it takes {} × {} images; the page opens models with inputs up to {MAX_INPUT_SIDE} × {MAX_INPUT_SIDE}", i.width, i.height));
    }
    let parameters: usize = spec.nodes.iter().flat_map(|n| n.op.weight_shapes(&n.name)).map(|(_, shape)| shape.iter().product::<usize>()).sum();
    if parameters > MAX_PARAMETERS {
        return Err(format!("it has {parameters} weights; the page opens models with at most {MAX_PARAMETERS}"));
    }
    Ok(())
}

/// The bundle in a single file's bytes and its sample images, if any — or what is wrong, in
/// the loader's words.
/// An ONNX file is imported with the visitor's `onnx` choices; a bundle has its own.
pub fn open(bytes: &[u8], onnx: &OnnxChoices) -> Result<(Bundle, Option<SampleSet>), AppError> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(AppError::Model(format!("the file is {} MB; the page opens models of {}", bytes.len() / 1_000_000, limits_text())));
    }
    if !looks_like_safetensors(bytes) {
        return open_onnx(bytes, onnx);
    }
    let spec = single_file_spec(bytes)?;
    check_limits(&spec).map_err(|why| AppError::Model(format!("the page cannot open this model: {why}")))?;
    let bundle = Bundle::from_single_file(bytes)?;
    let samples = match Bundle::single_file_samples(bytes)? {
        Some(json) => {
            let set = SampleSet::from_json(&json)?;
            if set.shape != bundle.input_shape() {
                return Err(AppError::Model(format!("its sample images are {:?} but the model takes {:?}", set.shape, bundle.input_shape())));
            }
            Some(set).filter(|s| !s.samples.is_empty())
        }
        None => None,
    };
    Ok((bundle, samples))
}

/// A safetensors file starts with the length of its JSON header, then the header's `{`.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.get(8) == Some(&b'{')
}

/// An ONNX model, imported as `advlens import [--mean --std --classes imagenet]` does: pixels
/// in [0, 1] (plus any normalisation inside the graph) or normalised as asked, classes numbered
/// or ImageNet's. It brings no sample images.
fn open_onnx(bytes: &[u8], onnx: &OnnxChoices) -> Result<(Bundle, Option<SampleSet>), AppError> {
    let options = onnx.import_options("onnx-model");
    let bundle = advlens_shared::onnx::import(bytes, &options).map_err(|e| match e {
        advlens_shared::Error::Onnx(why) if why.starts_with("not an ONNX model file") => AppError::Model(
            "this is neither an advlens model file (write one with `advlens pack --model DIR --out FILE`) nor an ONNX model".into(),
        ),
        // The importer speaks the CLI's flags; here the choices are the page's fields.
        other => AppError::Model(format!(
            "this ONNX model cannot be opened: {}; `advlens import` then `advlens pack` give a file with class names, normalisation and sample images",
            other.to_string().replace("--mean", "the mean chosen for its pixels").replace("--std", "the std chosen for its pixels")
        )),
    })?;
    check_limits(bundle.spec()).map_err(|why| AppError::Model(format!("the page cannot open this model: {why}")))?;
    Ok((bundle, None))
}

/// The description stored in a single file, parsed (and checked) but not yet built.
fn single_file_spec(bytes: &[u8]) -> Result<ModelSpec, AppError> {
    Bundle::single_file_spec(bytes).map_err(|e| match e {
        advlens_shared::Error::Weights(why) => AppError::Model(format!("this is not an advlens model file ({why}): write one with `advlens pack --model DIR --out FILE`")),
        other => other.into(),
    })
}

/// The name of a model file or URL, for titles: its last path segment.
pub fn title_of(url_or_name: &str) -> String {
    let path = url_or_name.split(['?', '#']).next().unwrap_or(url_or_name).trim_end_matches('/');
    path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(path).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ModelSpec {
        serde_json::from_str(include_str!("../assets/models/mnist-small/model.json")).unwrap()
    }

    #[test]
    fn limits_refuse_huge_inputs_odd_channels_and_too_many_weights() {
        assert_eq!(check_limits(&spec()), Ok(()));
        let mut huge = spec();
        (huge.input.height, huge.input.width) = (100_000, 100_000);
        assert!(check_limits(&huge).unwrap_err().contains("100000 × 100000"));
        let mut four = spec();
        four.input.channels = 4;
        assert!(check_limits(&four).unwrap_err().contains("4 channels"));
        let mut wide = spec();
        if let Some(advlens_shared::model::Op::Linear { in_features, .. }) = wide.nodes.iter_mut().map(|n| &mut n.op).find(|op| matches!(op, advlens_shared::model::Op::Linear { .. })) {
            *in_features = 10_000_000;
        }
        assert!(check_limits(&wide).unwrap_err().contains("weights"));
    }

    #[test]
    fn files_that_are_not_bundles_say_how_to_make_one() {
        for bytes in [&b"\x89PNG\r\n\x1a\nrest"[..], b"", b"{\"format\": \"advlens-bundle\"}"] {
            let m = open(bytes, &OnnxChoices::default()).unwrap_err().to_string();
            assert!(m.contains("advlens pack"), "{m}");
        }
    }

    #[test]
    fn a_packed_bundle_opens_with_its_samples_and_a_truncated_one_says_what_is_wrong() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/models/mnist-small");
        let bundle = Bundle::from_bytes(&std::fs::read(format!("{dir}/model.json")).unwrap(), &std::fs::read(format!("{dir}/weights.safetensors")).unwrap()).unwrap();
        let samples = std::fs::read(format!("{dir}/samples.json")).unwrap();
        let file = bundle.to_single_file_with_samples(&samples).unwrap();
        let (opened, set) = open(&file, &OnnxChoices::default()).unwrap();
        assert_eq!(opened.weights(), bundle.weights());
        assert_eq!(set.unwrap(), SampleSet::from_json(&samples).unwrap());
        let m = open(&file[..file.len() - 100], &OnnxChoices::default()).unwrap_err().to_string();
        assert!(m.contains("cut off"), "{m}");
        assert_eq!(title_of("https://host/dir/my-net.advlens.safetensors?x=1"), "my-net.advlens.safetensors");
    }
}
