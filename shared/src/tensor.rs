//! A dense, row-major `f32` tensor: the one data type the engines exchange.

use crate::{Error, Result};

/// A dense row-major tensor of `f32` (images are NCHW).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// Wraps `data` as a tensor of `shape`; fails when the element counts differ.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(Error::Tensor {
                name: "input".into(),
                problem: format!("shape {shape:?} holds {expected} values but {} were given", data.len()),
            });
        }
        Ok(Self { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self { shape, data: vec![0.0; n] }
    }

    /// Images given as bytes (0..=255) scaled to [0, 1], the input range of every model.
    pub fn from_u8_images(shape: Vec<usize>, pixels: &[u8]) -> Result<Self> {
        Self::new(shape, pixels.iter().map(|&p| f32::from(p) / 255.0).collect())
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The same data under another shape with the same element count.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Self::new(shape, self.data)
    }

    /// Row `i` of a 2-D tensor `[rows, cols]`.
    pub fn row(&self, i: usize) -> &[f32] {
        let cols = self.shape[1..].iter().product::<usize>();
        &self.data[i * cols..(i + 1) * cols]
    }
}

/// Softmax of one row of logits, computed stably (max subtracted).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&z| (z - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
