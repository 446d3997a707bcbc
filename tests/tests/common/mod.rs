//! Helpers shared by the cross-crate test files (each file includes this as `mod common`).
#![allow(dead_code)] // each test file uses a subset

use std::sync::Arc;

use advlens_shared::model::{Bundle, ModelSpec};
use advlens_shared::testing::{random_weights, Rng};
use advlens_shared::Tensor;
use advlens_trainer::net::Net;
use tch::{nn, Device, Kind};

/// The same images as a libtorch tensor of the same shape.
pub fn to_tch(x: &Tensor) -> tch::Tensor {
    let shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    tch::Tensor::from_slice(x.data()).view(shape.as_slice())
}

/// A libtorch tensor's values, flattened, as f32.
pub fn to_vec(t: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap()
}

/// A random bundle and its libtorch twin: same graph, same weights. The var store owns the
/// twin's weights, so keep it alive with the net.
pub fn twins(rng: &mut Rng, spec: ModelSpec) -> (Arc<Bundle>, nn::VarStore, Net) {
    let weights = random_weights(rng, &spec);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = Net::new(&vs.root(), &spec);
    net.load_weights(&weights).unwrap();
    (Arc::new(Bundle::new(spec, weights).unwrap()), vs, net)
}
