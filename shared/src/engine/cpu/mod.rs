//! The CPU reference engine: exact, portable (native and wasm32), single-threaded.

pub mod layers;

use std::collections::HashMap;

use self::layers::Window;
use crate::model::{Bundle, Op, INPUT_NAME};
use crate::{Error, Result, Tensor};

/// Runs a [`Bundle`] with the plain-loop layers of [`layers`].
#[derive(Clone, Debug)]
pub struct CpuEngine {
    bundle: std::sync::Arc<Bundle>,
}

impl CpuEngine {
    pub fn new(bundle: std::sync::Arc<Bundle>) -> Self {
        Self { bundle }
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Class logits `[N, classes]` for a batch of images `[N, C, H, W]` in [0, 1].
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let mut acts = self.forward_all(input)?;
        let out = &self.bundle.spec().output;
        Ok(acts.remove(out).expect("validated bundles have their output node"))
    }

    /// The output of every node (and `"input"`, normalised), each with its batch axis.
    pub fn forward_all(&self, input: &Tensor) -> Result<HashMap<String, Tensor>> {
        let bundle = &*self.bundle;
        let batch = check_input(bundle, input)?;
        let spec = bundle.spec();
        let [c, h, w] = bundle.input_shape();
        let normalized = layers::normalize_forward(input.data(), batch, &spec.input.mean, &spec.input.std, h * w);
        let mut acts: HashMap<String, Tensor> = HashMap::new();
        acts.insert(INPUT_NAME.into(), Tensor::new(vec![batch, c, h, w], normalized)?);
        for node in &spec.nodes {
            let x = &acts[&node.inputs[0]];
            let in_shape = bundle.shape_of(&node.inputs[0]).expect("validated");
            let out_shape = bundle.shape_of(&node.name).expect("validated");
            let weight = || bundle.weight(&format!("{}.weight", node.name)).data();
            let bias = || bundle.weight(&format!("{}.bias", node.name)).data();
            let y = match node.op {
                Op::Conv2d { out_channels, kernel, stride, padding, .. } => {
                    let g = window(batch, in_shape, out_shape, kernel, stride, padding);
                    layers::conv2d_forward(x.data(), weight(), bias(), g, out_channels)
                }
                Op::MaxPool2d { kernel, stride, padding } => {
                    layers::max_pool2d_forward(x.data(), window(batch, in_shape, out_shape, kernel, stride, padding))
                }
                Op::Linear { in_features, out_features } => {
                    layers::linear_forward(x.data(), weight(), bias(), batch, in_features, out_features)
                }
                Op::Relu => layers::relu_forward(x.data()),
                Op::Flatten | Op::Dropout => x.data().to_vec(),
            };
            let mut shape = vec![batch];
            shape.extend_from_slice(out_shape);
            acts.insert(node.name.clone(), Tensor::new(shape, y)?);
        }
        Ok(acts)
    }
}

pub(crate) fn window(batch: usize, input: &[usize], output: &[usize], kernel: usize, stride: usize, padding: usize) -> Window {
    Window {
        batch,
        in_channels: input[0],
        height: input[1],
        width: input[2],
        kernel,
        stride,
        padding,
        out_height: output[1],
        out_width: output[2],
    }
}

/// The batch size of `input`, after checking it is `[N, C, H, W]` as the model expects.
pub(crate) fn check_input(bundle: &Bundle, input: &Tensor) -> Result<usize> {
    let [c, h, w] = bundle.input_shape();
    match *input.shape() {
        [n, ic, ih, iw] if n > 0 && [ic, ih, iw] == [c, h, w] => Ok(n),
        _ => Err(Error::InputShape { expected: format!("[N, {c}, {h}, {w}] with N > 0"), found: format!("{:?}", input.shape()) }),
    }
}
