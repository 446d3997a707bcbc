//! Architectures, written as bundle graphs: the trainer runs exactly the graph it exports.
//!
//! Four families, scaled to 28x28 and 32x32 inputs so that they train on a CPU; `width` is the
//! channel count of the first convolution (later stages double it, as in the originals).

use advlens_shared::model::{check_spec, InputSpec, ModelSpec, Node, Op, FORMAT_NAME, FORMAT_VERSION, INPUT_NAME};
use anyhow::{bail, Result};

/// The architectures `advlens train --arch` knows, with a one-line description each.
pub const ARCHITECTURES: &[(&str, &str)] = &[
    ("small-cnn", "conv-relu-pool x2, linear (~20k parameters)"),
    ("alexnet", "AlexNet-like: 5x5 convs and overlapping 3x3 pools, 5 convs, 2 fully connected layers with dropout"),
    ("vgg", "VGG-like: three stages of two 3x3 conv + batch norm + relu, max pools, 2 fully connected layers"),
    ("resnet", "ResNet-like: stem + three residual stages (basic blocks, batch norm, strided 1x1 shortcuts), global average pool"),
];

/// The default width (first-layer channels) of each architecture.
pub fn default_width(arch: &str) -> usize {
    match arch {
        "alexnet" => 32,
        _ => 16,
    }
}

/// The node whose output the consistent loss compares by default: the last convolutional block.
pub fn default_feature_layer(arch: &str) -> &'static str {
    match arch {
        "alexnet" => "relu5",
        "vgg" => "relu6",
        "resnet" => "block3_out",
        _ => "relu2",
    }
}

/// Builds the graph of architecture `arch` (first-layer `width` channels) for `input` and
/// `classes`, and checks that it fits the input size.
pub fn build(arch: &str, name: &str, input: InputSpec, classes: Vec<String>, width: usize) -> Result<ModelSpec> {
    if width == 0 {
        bail!("--width must be at least 1");
    }
    let (c, h, w, k) = (input.channels, input.height, input.width, classes.len());
    let nodes = match arch {
        "small-cnn" => small_cnn(c, h, w, k, width),
        "alexnet" => alexnet(c, h, w, k, width),
        "vgg" => vgg(c, h, w, k, width),
        "resnet" => resnet(c, k, width),
        other => {
            let known: Vec<&str> = ARCHITECTURES.iter().map(|(n, _)| *n).collect();
            bail!("unknown architecture `{other}`: known architectures are {}", known.join(", "))
        }
    };
    let output = nodes.last().expect("architectures have nodes").name.clone();
    let spec = ModelSpec {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name: name.into(),
        input,
        classes,
        nodes,
        output,
        hierarchy: Default::default(),
        provenance: Default::default(),
    };
    if let Err(e) = check_spec(&spec) {
        bail!("architecture `{arch}` does not fit {c}x{h}x{w} inputs: {e}");
    }
    Ok(spec)
}

/// Builds nodes in order; each new node reads the previous one unless told otherwise.
struct Graph {
    nodes: Vec<Node>,
    last: String,
}

impl Graph {
    fn new() -> Self {
        Self { nodes: Vec::new(), last: INPUT_NAME.into() }
    }
    fn push(&mut self, name: &str, op: Op) -> &mut Self {
        let input = self.last.clone();
        self.push_from(name, &[&input], op)
    }
    fn push_from(&mut self, name: &str, inputs: &[&str], op: Op) -> &mut Self {
        self.nodes.push(Node { name: name.into(), inputs: inputs.iter().map(|s| s.to_string()).collect(), op });
        self.last = name.into();
        self
    }
}

fn conv(cin: usize, cout: usize, kernel: usize, stride: usize) -> Op {
    Op::Conv2d { in_channels: cin, out_channels: cout, kernel, stride, padding: kernel / 2, groups: 1, dilation: 1 }
}

fn max_pool(kernel: usize) -> Op {
    // 3x3 windows overlap (AlexNet); padding 1 keeps odd sides (7 -> 4) usable.
    Op::MaxPool2d { kernel, stride: 2, padding: (kernel - 1) / 2 }
}

fn batch_norm(channels: usize) -> Op {
    Op::BatchNorm2d { channels, eps: 1e-5 }
}

/// `floor((side + 2p - k) / 2) + 1` for the pools above.
fn pooled(side: usize, kernel: usize) -> usize {
    (side + 2 * ((kernel - 1) / 2) - kernel) / 2 + 1
}

/// conv(w) - relu - pool - conv(2w) - relu - pool - linear.
fn small_cnn(c: usize, h: usize, w: usize, classes: usize, width: usize) -> Vec<Node> {
    let mut g = Graph::new();
    g.push("conv1", conv(c, width, 3, 1)).push("relu1", Op::Relu).push("pool1", max_pool(2));
    g.push("conv2", conv(width, 2 * width, 3, 1)).push("relu2", Op::Relu).push("pool2", max_pool(2));
    let (h, w) = (h / 4, w / 4);
    g.push("flatten", Op::Flatten).push("fc", Op::Linear { in_features: 2 * width * h * w, out_features: classes });
    g.nodes
}

/// AlexNet's shape at 1/8 of its width: conv5-pool-conv5-pool-conv3-conv3-conv3-pool-fc-fc-fc.
fn alexnet(c: usize, h: usize, w: usize, classes: usize, width: usize) -> Vec<Node> {
    let mut g = Graph::new();
    let (w1, w2, w3) = (width, 2 * width, 3 * width);
    g.push("conv1", conv(c, w1, 5, 1)).push("relu1", Op::Relu).push("pool1", max_pool(3));
    g.push("conv2", conv(w1, w2, 5, 1)).push("relu2", Op::Relu).push("pool2", max_pool(3));
    g.push("conv3", conv(w2, w3, 3, 1)).push("relu3", Op::Relu);
    g.push("conv4", conv(w3, w3, 3, 1)).push("relu4", Op::Relu);
    g.push("conv5", conv(w3, w2, 3, 1)).push("relu5", Op::Relu).push("pool3", max_pool(3));
    let (h, w) = (pooled(pooled(pooled(h, 3), 3), 3), pooled(pooled(pooled(w, 3), 3), 3));
    g.push("flatten", Op::Flatten).push("drop1", Op::Dropout);
    g.push("fc1", Op::Linear { in_features: w2 * h * w, out_features: 8 * width }).push("relu6", Op::Relu);
    g.push("drop2", Op::Dropout).push("fc2", Op::Linear { in_features: 8 * width, out_features: 8 * width });
    g.push("relu7", Op::Relu).push("fc3", Op::Linear { in_features: 8 * width, out_features: classes });
    g.nodes
}

/// VGG's pattern: [conv3-bn-relu x2, pool] x3, then two fully connected layers.
fn vgg(c: usize, h: usize, w: usize, classes: usize, width: usize) -> Vec<Node> {
    let mut g = Graph::new();
    let mut cin = c;
    let mut layer = 1;
    for stage in 1..=3 {
        let cout = width << (stage - 1);
        for _ in 0..2 {
            g.push(&format!("conv{layer}"), conv(cin, cout, 3, 1));
            g.push(&format!("bn{layer}"), batch_norm(cout)).push(&format!("relu{layer}"), Op::Relu);
            cin = cout;
            layer += 1;
        }
        g.push(&format!("pool{stage}"), max_pool(2));
    }
    let (h, w) = (h / 8, w / 8);
    g.push("flatten", Op::Flatten).push("fc1", Op::Linear { in_features: cin * h * w, out_features: 16 * width });
    g.push("relu_fc", Op::Relu).push("drop", Op::Dropout);
    g.push("fc2", Op::Linear { in_features: 16 * width, out_features: classes });
    g.nodes
}

/// A ResNet with one basic block per stage (ResNet-8): widths w, 2w, 4w, strides 1, 2, 2.
fn resnet(c: usize, classes: usize, width: usize) -> Vec<Node> {
    let mut g = Graph::new();
    g.push("stem_conv", conv(c, width, 3, 1)).push("stem_bn", batch_norm(width)).push("stem_relu", Op::Relu);
    let mut cin = width;
    for stage in 1..=3 {
        let (cout, stride) = (width << (stage - 1), if stage == 1 { 1 } else { 2 });
        let input = g.last.clone();
        let b = format!("block{stage}");
        g.push(&format!("{b}_conv1"), conv(cin, cout, 3, stride)).push(&format!("{b}_bn1"), batch_norm(cout));
        g.push(&format!("{b}_relu1"), Op::Relu);
        g.push(&format!("{b}_conv2"), conv(cout, cout, 3, 1)).push(&format!("{b}_bn2"), batch_norm(cout));
        let main = g.last.clone();
        let shortcut = if stride != 1 || cin != cout {
            g.push_from(&format!("{b}_short_conv"), &[&input], conv(cin, cout, 1, stride));
            g.push(&format!("{b}_short_bn"), batch_norm(cout));
            g.last.clone()
        } else {
            input
        };
        g.push_from(&format!("{b}_add"), &[&main, &shortcut], Op::Add).push(&format!("{b}_out"), Op::Relu);
        cin = cout;
    }
    g.push("pool", Op::GlobalAvgPool).push("fc", Op::Linear { in_features: cin, out_features: classes });
    g.nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(c: usize, side: usize) -> InputSpec {
        InputSpec { channels: c, height: side, width: side, mean: vec![0.5; c], std: vec![0.25; c] }
    }

    #[test]
    fn every_architecture_fits_28_and_32_and_has_its_feature_layer() {
        for (arch, _) in ARCHITECTURES {
            for (c, side) in [(1, 28), (3, 32)] {
                let spec = build(arch, "m", input(c, side), (0..10).map(|i| i.to_string()).collect(), default_width(arch))
                    .unwrap_or_else(|e| panic!("{arch} {side}: {e:#}"));
                let shapes = check_spec(&spec).unwrap();
                assert_eq!(shapes[&spec.output], vec![10], "{arch} {side}");
                let feature = &shapes[default_feature_layer(arch)];
                assert_eq!(feature.len(), 3, "{arch}: the feature layer is a conv block");
            }
        }
    }

    #[test]
    fn a_too_small_input_is_a_clear_error() {
        let err = build("vgg", "m", input(1, 4), vec!["a".into(), "b".into()], 8).unwrap_err().to_string();
        assert!(err.contains("does not fit 1x4x4"), "{err}");
        let err = build("lenet", "m", input(1, 28), vec!["a".into()], 8).unwrap_err().to_string();
        assert!(err.contains("known architectures are small-cnn, alexnet, vgg, resnet"), "{err}");
    }
}

#[cfg(test)]
mod receptive_field_tests {
    use super::*;
    use crate::analysis::receptive_field;

    #[test]
    fn receptive_fields_by_hand() {
        let input = InputSpec { channels: 1, height: 28, width: 28, mean: vec![0.5], std: vec![0.25] };
        let spec = build("small-cnn", "m", input.clone(), vec!["a".into(), "b".into()], 4).unwrap();
        // conv3 (3, 1), pool2 (4, 2, centre 0.5), conv3 (4 + 2*2 = 8, 2).
        assert_eq!(receptive_field(&spec, "relu1"), (3.0, 1.0, 0.0));
        assert_eq!(receptive_field(&spec, "relu2"), (8.0, 2.0, 0.5));
        let spec = build("alexnet", "m", input, vec!["a".into(), "b".into()], 4).unwrap();
        // conv5 (5,1) pool3/s2/p1 (7,2,0) conv5 (15,2) pool3 (19,4) conv3 x3 (27, 35, 43; 4).
        assert_eq!(receptive_field(&spec, "relu5").0, 43.0);
    }
}
