//! Scalar objectives whose gradients the engines compute, and channel ablations.

use std::collections::HashMap;

use crate::tensor::softmax;
use crate::{Error, Result, Tensor};

/// A scalar function of one image's activations. For a batch, each image has its own value
/// and its own gradient (the gradient of the batch sum).
#[derive(Clone, Debug, PartialEq)]
pub enum Objective {
    /// The logit of `class` at the model output.
    Logit { class: usize },
    /// `-log softmax(logits)[target]`, the cross-entropy toward `target`.
    CrossEntropy { target: usize },
    /// The spatial maximum of `channel` of node `node` (a neuron's response, in the paper's sense).
    ChannelMax { node: String, channel: usize },
    /// The spatial sum of `channel` of node `node`.
    ChannelSum { node: String, channel: usize },
}

impl Objective {
    /// The node the objective reads (`None`: the model output).
    pub fn node(&self) -> Option<&str> {
        match self {
            Objective::Logit { .. } | Objective::CrossEntropy { .. } => None,
            Objective::ChannelMax { node, .. } | Objective::ChannelSum { node, .. } => Some(node),
        }
    }

    /// The objective as the GPU's seed kernel takes it (`kernels/objective.wgsl`): a kind (0
    /// logit, 1 cross-entropy, 2 channel maximum, 3 channel sum) and its class or channel.
    #[cfg(feature = "webgpu")]
    pub(crate) fn code(&self) -> (u32, u32) {
        match *self {
            Objective::Logit { class } => (0, class as u32),
            Objective::CrossEntropy { target } => (1, target as u32),
            Objective::ChannelMax { channel, .. } => (2, channel as u32),
            Objective::ChannelSum { channel, .. } => (3, channel as u32),
        }
    }

    /// Whether the class or channel exists in a node of per-image shape `shape` (the errors of
    /// [`Objective::value_and_seed`], before a GPU computes the seed).
    #[cfg(feature = "webgpu")]
    pub(crate) fn check(&self, shape: &[usize]) -> Result<()> {
        let probe = Tensor::zeros([&[1][..], shape].concat());
        self.value_and_seed(&probe).map(|_| ())
    }

    /// Per-image values and the gradient with respect to `act` (`[N, ...]`, the node read).
    pub(crate) fn value_and_seed(&self, act: &Tensor) -> Result<(Vec<f32>, Vec<f32>)> {
        let batch = act.shape()[0];
        let per_image = act.len() / batch;
        let channels = act.shape().get(1).copied().unwrap_or(1);
        let plane = per_image / channels;
        let mut seed = vec![0.0; act.len()];
        let mut values = Vec::with_capacity(batch);
        let index_error = |what: &str, i: usize, n: usize| Error::InputShape {
            expected: format!("{what} below {n}"),
            found: format!("{what} {i}"),
        };
        for n in 0..batch {
            let row = &act.data()[n * per_image..][..per_image];
            let d_row = &mut seed[n * per_image..][..per_image];
            match *self {
                Objective::Logit { class } => {
                    if class >= per_image {
                        return Err(index_error("class", class, per_image));
                    }
                    values.push(row[class]);
                    d_row[class] = 1.0;
                }
                Objective::CrossEntropy { target } => {
                    if target >= per_image {
                        return Err(index_error("class", target, per_image));
                    }
                    let p = softmax(row);
                    values.push(-p[target].max(f32::MIN_POSITIVE).ln());
                    for (d, &pi) in d_row.iter_mut().zip(&p) {
                        *d = pi;
                    }
                    d_row[target] -= 1.0;
                }
                Objective::ChannelMax { channel, .. } | Objective::ChannelSum { channel, .. } => {
                    if channel >= channels {
                        return Err(index_error("channel", channel, channels));
                    }
                    let values_c = &row[channel * plane..][..plane];
                    let d_c = &mut d_row[channel * plane..][..plane];
                    if matches!(self, Objective::ChannelSum { .. }) {
                        values.push(values_c.iter().sum());
                        d_c.fill(1.0);
                    } else {
                        // The first maximum takes the gradient, as in max pooling.
                        let at = crate::tensor::argmax(values_c);
                        values.push(values_c[at]);
                        d_c[at] = 1.0;
                    }
                }
            }
        }
        Ok((values, seed))
    }
}

/// Channels to zero after chosen nodes: `node -> channels`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ablation {
    pub channels: HashMap<String, Vec<usize>>,
}

impl Ablation {
    /// Zero `channel` of `node`.
    pub fn zero(mut self, node: &str, channel: usize) -> Self {
        self.channels.entry(node.to_string()).or_default().push(channel);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.channels.values().all(Vec::is_empty)
    }

    /// Every node exists and every channel is below its channel count.
    pub(crate) fn validate(&self, bundle: &crate::Bundle) -> Result<()> {
        for (node, channels) in &self.channels {
            let shape = bundle
                .shape_of(node)
                .filter(|_| node != crate::model::INPUT_NAME)
                .ok_or_else(|| Error::Graph(format!("cannot ablate `{node}`: the model has no such node")))?;
            if let Some(&ch) = channels.iter().find(|&&ch| ch >= shape[0]) {
                return Err(Error::Graph(format!("cannot ablate channel {ch} of `{node}`: it has {} channels", shape[0])));
            }
        }
        Ok(())
    }

    /// A per-channel 0/1 mask for `node` (`None` when nothing of it is ablated).
    #[cfg(feature = "webgpu")]
    pub(crate) fn mask(&self, node: &str, channels: usize) -> Option<Vec<f32>> {
        let zeroed = self.channels.get(node).filter(|c| !c.is_empty())?;
        let mut mask = vec![1.0; channels];
        for &c in zeroed {
            mask[c] = 0.0;
        }
        Some(mask)
    }
}

/// What [`crate::engine::cpu::CpuEngine::gradient`] returns.
#[derive(Clone, Debug)]
pub struct Gradient {
    /// The objective's value for each image.
    pub values: Vec<f32>,
    /// d objective / d image, `[N, C, H, W]` (the raw image in [0, 1], before normalisation).
    pub input: Tensor,
    /// d objective / d activation for each requested node.
    pub activations: HashMap<String, Tensor>,
}
