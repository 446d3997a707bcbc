//! Architectures, written as bundle graphs: the trainer runs exactly the graph it exports.

use advlens_shared::model::{InputSpec, ModelSpec, Node, Op, FORMAT_NAME, FORMAT_VERSION, INPUT_NAME};
use anyhow::{bail, Result};

/// The architectures `advlens train --arch` knows.
pub const ARCHITECTURES: &[&str] = &["small-cnn"];

/// Builds the graph of architecture `arch` for `input` and `classes`.
pub fn build(arch: &str, name: &str, input: InputSpec, classes: Vec<String>) -> Result<ModelSpec> {
    let nodes = match arch {
        "small-cnn" => small_cnn(input.channels, input.height, input.width, classes.len())?,
        other => bail!("unknown architecture `{other}`: known architectures are {}", ARCHITECTURES.join(", ")),
    };
    let output = nodes.last().expect("architectures have nodes").name.clone();
    Ok(ModelSpec {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name: name.into(),
        input,
        classes,
        nodes,
        output,
        hierarchy: Default::default(),
        provenance: Default::default(),
    })
}

fn node(name: &str, input: &str, op: Op) -> Node {
    Node { name: name.into(), inputs: vec![input.into()], op }
}

/// conv(16) - relu - pool - conv(32) - relu - pool - linear: ~20k parameters, ~99% on MNIST.
fn small_cnn(channels: usize, height: usize, width: usize, classes: usize) -> Result<Vec<Node>> {
    if height % 4 != 0 || width % 4 != 0 || height < 8 || width < 8 {
        bail!("small-cnn needs an input side that is a multiple of 4 and at least 8, got {height}x{width}");
    }
    let conv = |cin, cout| Op::Conv2d { in_channels: cin, out_channels: cout, kernel: 3, stride: 1, padding: 1 };
    let pool = Op::MaxPool2d { kernel: 2, stride: 2, padding: 0 };
    Ok(vec![
        node("conv1", INPUT_NAME, conv(channels, 16)),
        node("relu1", "conv1", Op::Relu),
        node("pool1", "relu1", pool.clone()),
        node("conv2", "pool1", conv(16, 32)),
        node("relu2", "conv2", Op::Relu),
        node("pool2", "relu2", pool),
        node("flatten", "pool2", Op::Flatten),
        node("fc", "flatten", Op::Linear { in_features: 32 * (height / 4) * (width / 4), out_features: classes }),
    ])
}
