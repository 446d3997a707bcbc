//! The model bundle: format (spec), loading and validation.

mod bundle;
mod samples;
mod spec;

pub use bundle::{check_printable, check_spec, last_feature_activation, limits, parse_spec, parse_weights, Bundle, SINGLE_FILE_KEY, SPEC_FILE, WEIGHTS_FILE};
pub use spec::{InputSpec, ModelSpec, Node, Op, Provenance, FORMAT_NAME, FORMAT_VERSION, INPUT_NAME, MAX_CONCAT_INPUTS};
pub use samples::{Reference, Sample, SampleSet, SAMPLES_FILE};
pub(crate) use bundle::infer_shape;
