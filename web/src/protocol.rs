//! The messages between the page (main thread) and the compute worker that runs the model.
//!
//! Every request carries an id; the worker answers each with the same id, one request at a
//! time and in order, so no two engine calls ever overlap (two overlapping WebGPU calls once
//! mismatched wgpu's error scopes and panicked the page). Messages travel as JSON strings.

use advlens_shared::model::{ModelSpec, SampleSet};

use advlens_shared::analysis::trace::Influence;
use advlens_shared::attack::AttackSpec;

use crate::onnx_choices::OnnxChoices;
use serde::{Deserialize, Serialize};

/// Which engine the page asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnginePref {
    /// WebGPU when the browser offers an adapter, else the CPU engine.
    Auto,
    /// The CPU engine (`?engine=cpu`).
    Cpu,
}

/// Where a bundle comes from (absolute URLs: the worker's own base is a blob: URL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelSource {
    /// A bundle folder: `model.json` and `weights.safetensors` under this URL.
    Folder(String),
    /// A single-file bundle at this URL (`advlens pack`): a visitor's file (a blob: URL) or
    /// `?bundle=`.
    File(String),
}

/// Another model of the page in an ensemble attack: attacked together with the loaded one, or
/// held out to show whether the adversarial image transfers to a model the attack never saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Companion {
    /// The catalog id, for the page.
    pub id: String,
    pub source: ModelSource,
    pub attacked: bool,
}

/// A companion's answer on the adversarial image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompanionVerdict {
    pub id: String,
    pub attacked: bool,
    pub probabilities: Vec<f32>,
}

/// One image, CHW values in [0, 1].
pub type Pixels = Vec<f32>;

/// What the page asks of the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Fetch and validate a bundle and open it on an engine. Replaces any model loaded before.
    /// An ONNX file is imported with the visitor's choices (a bundle carries its own).
    Load {
        source: ModelSource,
        engine: EnginePref,
        #[serde(default)]
        onnx: OnnxChoices,
    },
    /// Class probabilities of `n` images given as one NCHW array.
    Classify { pixels: Pixels, n: usize },
    /// The probabilities and the feature maps of `layers` for one image.
    Look { pixels: Pixels, layers: Vec<String> },
    /// Every channel of `layer`, ranked by its effect on the logit of `class` for one image.
    Trace { pixels: Pixels, class: usize, layer: String },
    /// An attack on one image, away from its true class `label` (from the predicted class when
    /// the true one is unknown) or towards the attack's target. The ensemble attack also runs
    /// on the `companions` marked `attacked`; every companion judges the adversarial image.
    Attack {
        pixels: Pixels,
        label: Option<usize>,
        attack: AttackSpec,
        #[serde(default)]
        companions: Vec<Companion>,
    },
    /// Arm a fault for tests (the page's hook `simulateDeviceLoss(step)`): the next attack
    /// destroys the GPU device after `at_step` steps, as a lost GPU would.
    SimulateDeviceLoss { at_step: usize },
}

/// The worker's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Loaded(ModelInfo),
    Classified(Vec<Vec<f32>>),
    Looked(Look),
    Traced(Vec<Influence>),
    Attacked(AttackRow),
    /// `SimulateDeviceLoss`: whether it is armed (there is a GPU device to lose).
    DeviceLost(bool),
}

/// The loaded model as the page needs it for drawing (the weights stay in the worker).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub spec: ModelSpec,
    /// Every node with its output shape (without the batch dimension).
    pub shapes: Vec<(String, Vec<usize>)>,
    pub parameters: usize,
    /// `cpu` or `webgpu`.
    pub engine: String,
    /// Where the model runs, for people.
    pub engine_description: String,
    /// Why WebGPU is not used, when it is not.
    pub fallback_reason: Option<String>,
    /// The sample images inside a single-file bundle (a folder's are fetched by the page).
    #[serde(default)]
    pub samples: Option<SampleSet>,
}

impl ModelInfo {
    /// The layers whose neurons the page shows: activations (ReLU, ReLU6, sigmoid, leaky ReLU)
    /// that output feature maps `[C, H, W]`.
    pub fn feature_layers(&self) -> Vec<(String, [usize; 3])> {
        self.spec
            .nodes
            .iter()
            .filter(|n| n.op.is_activation())
            .filter_map(|n| {
                let shape = &self.shapes.iter().find(|(name, _)| *name == n.name)?.1;
                match shape.as_slice() {
                    &[c, h, w] => Some((n.name.clone(), [c, h, w])),
                    _ => None,
                }
            })
            .collect()
    }

    pub fn input_shape(&self) -> [usize; 3] {
        let i = &self.spec.input;
        [i.channels, i.height, i.width]
    }
}

/// Feature maps of one layer for one image, `[C, H, W]` flattened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerMaps {
    pub layer: String,
    pub shape: [usize; 3],
    /// On the wire as base64url little-endian f32 (a CIFAR-10 ResNet's maps are 74k numbers:
    /// as JSON text they took the main thread tens of milliseconds to parse).
    #[serde(with = "f32_plane")]
    pub data: Vec<f32>,
}

impl LayerMaps {
    /// Channel `c`'s `H x W` plane.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.shape[1] * self.shape[2];
        &self.data[c * n..(c + 1) * n]
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Look {
    pub probabilities: Vec<f32>,
    pub layers: Vec<LayerMaps>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackRow {
    pub pixels: Pixels,
    pub clean_probabilities: Vec<f32>,
    pub probabilities: Vec<f32>,
    /// Untargeted: the prediction left the label; targeted: it reached `target`.
    pub success: bool,
    /// The class aimed at (given, or the least likely one for that attack).
    pub target: Option<usize>,
    /// The attack's loss at the start of each step.
    pub losses: Vec<f32>,
    /// The image after each step (the last is `pixels`): what the step slider shows. On the
    /// wire as base64url little-endian f32 — exact, and a string JSON parses fast.
    #[serde(with = "f32_planes")]
    pub steps: Vec<Pixels>,
    /// The ensemble attack's companions, each with its probabilities on the adversarial image.
    #[serde(default)]
    pub companions: Vec<CompanionVerdict>,
}

impl AttackRow {
    /// The image after step `k` (1-based), or the final one.
    pub fn image_at(&self, step: Option<usize>) -> &[f32] {
        match step {
            Some(k) if (1..=self.steps.len()).contains(&k) => &self.steps[k - 1],
            _ => &self.pixels,
        }
    }
}

/// `Vec<f32>` as one base64url string of little-endian f32.
mod f32_plane {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::state::{base64url_decode, base64url_encode};

    pub fn serialize<S: Serializer>(plane: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64url_encode(&plane.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64url_decode(&text).filter(|b| b.len() % 4 == 0).ok_or_else(|| D::Error::custom("feature maps are not base64url f32"))?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

/// `Vec<Vec<f32>>` as a list of base64url strings of little-endian f32.
mod f32_planes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::state::{base64url_decode, base64url_encode};

    pub fn serialize<S: Serializer>(planes: &[Vec<f32>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(planes.iter().map(|p| base64url_encode(&p.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f32>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                let bytes = base64url_decode(s).filter(|b| b.len() % 4 == 0).ok_or_else(|| D::Error::custom("an attack step is not base64url f32"))?;
                Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            })
            .collect()
    }
}

/// A request on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: u32,
    pub request: Request,
}

/// What the worker posts back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerMessage {
    /// The worker has started and takes requests.
    Ready,
    /// The answer to request `id`: the reply, or an error for people.
    Done { id: u32, result: Result<Reply, String> },
    /// Request `id` (an attack) has done `done` of its `total` steps.
    Progress { id: u32, done: usize, total: usize },
    /// The GPU failed during a request; the worker answers it, and all later ones, on the CPU
    /// engine. Sent before that request's `Done`.
    EngineChanged { engine: String, description: String, reason: String },
    /// The worker hit a bug and cannot go on.
    Panicked(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_json_round_trip() {
        let request = Envelope { id: 7, request: Request::Attack {
                pixels: vec![0.0, 0.5, 1.0],
                label: Some(3),
                attack: crate::attack_params::AttackParams::default().resolve(0.1, 10),
                companions: vec![Companion { id: "b".into(), source: ModelSource::Folder("http://h/models/b".into()), attacked: true }],
            },
        };
        let back: Envelope = serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(back, request);
        let done = WorkerMessage::Done { id: 7, result: Err("no model".into()) };
        let back: WorkerMessage = serde_json::from_str(&serde_json::to_string(&done).unwrap()).unwrap();
        assert_eq!(back, done);
        let traced = WorkerMessage::Done {
            id: 1,
            result: Ok(Reply::Traced(vec![Influence { channel: 2, activation: 1.5, grad_x_act: 0.25, logit_drop: 3.0, prob_drop: 0.125 }])),
        };
        let back: WorkerMessage = serde_json::from_str(&serde_json::to_string(&traced).unwrap()).unwrap();
        assert_eq!(back, traced);
        // Attack steps travel bit-exact, odd values included.
        let odd = vec![0.1, -0.0, 1.0 / 3.0, f32::MIN_POSITIVE, 0.999_999_9];
        let row = AttackRow {
            pixels: odd.clone(),
            clean_probabilities: vec![1.0],
            probabilities: vec![1.0],
            success: false,
            target: None,
            losses: vec![0.5],
            steps: vec![vec![0.25; 5], odd],
            companions: vec![CompanionVerdict { id: "b".into(), attacked: false, probabilities: vec![1.0] }],
        };
        let back: AttackRow = serde_json::from_str(&serde_json::to_string(&row).unwrap()).unwrap();
        assert!(back.steps.iter().flatten().zip(row.steps.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!((back.image_at(Some(1)), back.image_at(Some(2)), back.image_at(None), back.image_at(Some(3))), (&[0.25; 5][..], &row.steps[1][..], &row.pixels[..], &row.pixels[..]));
        let wire = |step: &str| format!(r#"{{"pixels":[],"clean_probabilities":[],"probabilities":[],"success":false,"target":null,"losses":[],"steps":["{step}"]}}"#);
        assert_eq!(serde_json::from_str::<AttackRow>(&wire("AACAPg")).unwrap().steps, vec![vec![0.25]]);
        for bad in ["AAA", "AA*A"] {
            assert!(serde_json::from_str::<AttackRow>(&wire(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn feature_layers_are_the_relus_with_feature_maps() {
        let spec: ModelSpec = serde_json::from_str(include_str!("../assets/models/mnist-small/model.json")).unwrap();
        let bundle_shapes = advlens_shared::model::check_spec(&spec).unwrap();
        let info = ModelInfo {
            shapes: spec.nodes.iter().map(|n| (n.name.clone(), bundle_shapes[&n.name].clone())).collect(),
            spec,
            parameters: 0,
            engine: "cpu".into(),
            engine_description: String::new(),
            fallback_reason: None,
            samples: None,
        };
        assert_eq!(info.feature_layers(), vec![("relu1".to_string(), [16, 28, 28]), ("relu2".to_string(), [32, 14, 14])]);
        let maps = LayerMaps { layer: "l".into(), shape: [2, 1, 2], data: vec![1.0, 2.0, 3.0, 4.0] };
        assert_eq!(maps.plane(1), &[3.0, 4.0]);
        let odd = LayerMaps { data: vec![0.1, -0.0, f32::MIN_POSITIVE, 1e30], ..maps };
        let back: LayerMaps = serde_json::from_str(&serde_json::to_string(&odd).unwrap()).unwrap();
        assert!(back.data.iter().zip(&odd.data).all(|(a, b)| a.to_bits() == b.to_bits()), "maps travel bit-exact");
    }
}
