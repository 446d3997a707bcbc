//! Example images shipped next to a bundle (`samples.json`), with the predictions that the
//! trainer computed for them on libtorch, so that any engine can be checked against it.

use serde::{Deserialize, Serialize};

use super::bundle::limits;
use crate::{Error, Result, Tensor};

/// File name of the sample set inside a bundle directory.
pub const SAMPLES_FILE: &str = "samples.json";

/// A handful of labelled images from a dataset split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleSet {
    /// Dataset the images come from, e.g. `mnist`.
    pub dataset: String,
    /// Split the images come from, e.g. `test`.
    pub split: String,
    /// `[channels, height, width]` of every image.
    pub shape: [usize; 3],
    pub samples: Vec<Sample>,
}

/// One image, CHW bytes (0..=255), with its label and libtorch's prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Index of the image in its split.
    pub index: usize,
    pub label: usize,
    pub pixels: Vec<u8>,
    /// What the trainer's libtorch model predicted for this image.
    pub reference: Reference,
}

/// A prediction computed by the trainer (libtorch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub predicted: usize,
    pub probabilities: Vec<f32>,
}

impl SampleSet {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let set: SampleSet = serde_json::from_slice(bytes).map_err(|e| Error::Samples(format!("not a valid sample set: {e}")))?;
        let [c, h, w] = set.shape;
        let len = c.checked_mul(h).and_then(|n| n.checked_mul(w));
        let len = match len {
            Some(n) if c > 0 && c <= limits::MAX_CHANNELS && h > 0 && h <= limits::MAX_SIDE && w > 0 && w <= limits::MAX_SIDE => n,
            _ => return Err(Error::Samples(format!("implausible image shape {:?}", set.shape))),
        };
        if let Some(s) = set.samples.iter().find(|s| s.pixels.len() != len) {
            return Err(Error::Samples(format!("sample {} has {} pixels, shape {:?} needs {len}", s.index, s.pixels.len(), set.shape)));
        }
        if let Some(s) = set.samples.iter().find(|s| s.reference.probabilities.is_empty() || s.label >= s.reference.probabilities.len() || s.reference.predicted >= s.reference.probabilities.len()) {
            return Err(Error::Samples(format!("sample {}: its label or predicted class is not one of its {} probabilities", s.index, s.reference.probabilities.len())));
        }
        Ok(set)
    }

    /// All images as one `[N, C, H, W]` batch in [0, 1].
    pub fn batch(&self) -> Result<Tensor> {
        let pixels: Vec<u8> = self.samples.iter().flat_map(|s| s.pixels.iter().copied()).collect();
        let [c, h, w] = self.shape;
        Tensor::from_u8_images(vec![self.samples.len(), c, h, w], &pixels)
    }
}
