//! The page's state, which is its URL:
//! `?model=|bundle=&mean=&std=&sample=|pixels=|concept=&layer=&neuron=&class=&image=&engine=&embed=`, the attack's
//! `attack=&eps=&steps=&target=&seed=` and the attack step shown, `step=`.
//! Parsed (percent-decoded) and checked in one place; every problem becomes a sentence the page
//! shows, and the value falls back to its default — a bad link never leads to a dead end.

use crate::attack_params::AttackParams;
use crate::onnx_choices::{Normalisation, OnnxChoices};
use crate::protocol::EnginePref;

/// Which version of the sample the views show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ImageKind {
    #[default]
    Real,
    /// The sample after the page's PGD attack (deterministic: the URL reproduces it).
    Adversarial,
}

/// Everything a URL can say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageState {
    pub model: Option<String>,
    /// A single-file bundle to open instead of a bundled model (`?bundle=URL`).
    pub bundle: Option<String>,
    /// What an ONNX model file cannot say (`?mean=&std=&classes=imagenet`): for the visitor's
    /// own file only.
    pub onnx: OnnxChoices,
    pub sample: usize,
    /// An image of the visitor's own (drawn or uploaded), CHW bytes at the model's input size;
    /// shown instead of the sample. In the URL as base64url, so it can be shared too.
    pub pixels: Option<Vec<u8>>,
    /// A fresh concept-world image, `ConceptWorld::generate(CONCEPT_SEED, n)`, for models of the
    /// concept world: generated in the page, with its part masks.
    pub concept: Option<u64>,
    /// The layer of the neuron view and of "why this prediction?" (default: the last one).
    pub layer: Option<String>,
    /// The neuron (channel of `layer`) opened in the neuron view.
    pub neuron: Option<usize>,
    /// The class to explain (default: the predicted one).
    pub class: Option<usize>,
    pub image: ImageKind,
    pub engine: Option<EnginePref>,
    /// Show one view only, for an iframe in a course page.
    pub embed: Option<Embed>,
    /// The attack that makes the adversarial image (`attack=&eps=&steps=&target=&seed=`).
    pub attack: AttackParams,
    /// With the adversarial image: show it after this many of the attack's steps (default: all).
    pub step: Option<usize>,
    /// A second model shown beside this one (`?compare=<model id>`).
    pub compare: Option<String>,
}

/// The views a page can embed alone (`?embed=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embed {
    Network,
    Why,
    Neuron,
    Attack,
    Compare,
}

impl Embed {
    pub const ALL: [Embed; 5] = [Embed::Network, Embed::Why, Embed::Neuron, Embed::Attack, Embed::Compare];

    pub fn as_str(self) -> &'static str {
        match self {
            Embed::Network => "network",
            Embed::Why => "why",
            Embed::Neuron => "neuron",
            Embed::Attack => "attack",
            Embed::Compare => "compare",
        }
    }

    /// Its name for people.
    pub fn title(self) -> &'static str {
        match self {
            Embed::Network => "what the network sees",
            Embed::Why => "why this prediction",
            Embed::Neuron => "one neuron up close",
            Embed::Attack => "attack the image",
            Embed::Compare => "two models compared",
        }
    }

    /// A height in CSS pixels that shows the view without scrolling on a desktop.
    pub fn height(self) -> u32 {
        match self {
            Embed::Network => 620,
            Embed::Why => 760,
            Embed::Neuron => 720,
            Embed::Attack => 900,
            Embed::Compare => 820,
        }
    }
}

impl PageState {
    /// Reads a query string (`?a=b&c=d`, the `?` optional). Unknown keys are ignored; values
    /// that cannot be read are dropped with a message saying what was done instead.
    pub fn parse(query: &str) -> (PageState, Vec<String>) {
        let mut state = PageState::default();
        let mut problems = Vec::new();
        let (mut mean, mut std) = (None, None);
        for pair in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(value) = percent_decode(raw) else {
                problems.push(format!("?{key}= is not a valid URL value: ignored"));
                continue;
            };
            match state.attack.read(key, &value) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            }
            let number = |what: &str, problems: &mut Vec<String>| match value.trim().parse::<usize>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("?{key}={value} is not a {what} number: ignored"));
                    None
                }
            };
            match key {
                "model" if !value.is_empty() => state.model = Some(value.clone()),
                "bundle" if !value.is_empty() => state.bundle = Some(value.clone()),
                "mean" => mean = Some(value.clone()),
                "std" => std = Some(value.clone()),
                "classes" => match value.as_str() {
                    "imagenet" => state.onnx.imagenet_classes = true,
                    other => problems.push(format!("?classes={other} is unknown (the page knows imagenet): numbering the classes")),
                },
                "compare" if !value.is_empty() => state.compare = Some(value.clone()),
                "sample" => state.sample = number("sample", &mut problems).unwrap_or(0),
                "concept" => match value.trim().parse::<u64>() {
                    Ok(n) => state.concept = Some(n),
                    Err(_) => problems.push(format!("?concept={value} is not a concept-world image number: showing a sample")),
                },
                "pixels" => match base64url_decode(&value) {
                    Some(bytes) if !bytes.is_empty() => state.pixels = Some(bytes),
                    _ => problems.push("?pixels= is not a base64url image: showing a sample instead".into()),
                },
                "layer" if !value.is_empty() => state.layer = Some(value.clone()),
                "neuron" => state.neuron = number("neuron", &mut problems),
                "step" => state.step = number("step", &mut problems),
                "class" => state.class = number("class", &mut problems),
                "image" => match value.as_str() {
                    "real" => state.image = ImageKind::Real,
                    "adversarial" => state.image = ImageKind::Adversarial,
                    other => problems.push(format!("?image={other} is unknown (use real or adversarial): showing the real image")),
                },
                // `trace` is another name of "why this prediction?" (the CLI's word for it).
                "embed" => match Embed::ALL.into_iter().find(|e| e.as_str() == value || (value == "trace" && *e == Embed::Why)) {
                    Some(e) => state.embed = Some(e),
                    None => problems.push(format!("?embed={value} is unknown (use network, why or trace, neuron, attack or compare): showing the whole page")),
                },
                "engine" => match value.as_str() {
                    "cpu" => state.engine = Some(EnginePref::Cpu),
                    "auto" | "webgpu" => state.engine = Some(EnginePref::Auto),
                    other => problems.push(format!("?engine={other} is unknown (use cpu or webgpu): choosing automatically")),
                },
                _ => {}
            }
        }
        match (mean, std) {
            (Some(mean), Some(std)) => match Normalisation::parse(&mean, &std) {
                Ok(n) => state.onnx.normalisation = Some(n),
                Err(why) => problems.push(format!("?mean={mean}&std={std}: {why}; reading the model's pixels as its file says")),
            },
            (Some(_), None) | (None, Some(_)) => problems.push("?mean= and ?std= go together: give both, or neither to read the model's pixels as its file says".into()),
            (None, None) => {}
        }
        (state, problems)
    }

    /// The query string of this state (defaults left out), starting with `?`.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        match (&self.bundle, &self.model) {
            (Some(b), _) => parts.push(format!("bundle={}", percent_encode(b))),
            (None, Some(m)) => parts.push(format!("model={}", percent_encode(m))),
            (None, None) => {}
        }
        if let Some(n) = &self.onnx.normalisation {
            parts.push(format!("mean={}&std={}", n.mean_text(), n.std_text()));
        }
        if self.onnx.imagenet_classes {
            parts.push("classes=imagenet".into());
        }
        match (&self.pixels, self.concept) {
            (Some(p), _) => parts.push(format!("pixels={}", base64url_encode(p))),
            (None, Some(n)) => parts.push(format!("concept={n}")),
            (None, None) => parts.push(format!("sample={}", self.sample)),
        }
        if let Some(l) = &self.layer {
            parts.push(format!("layer={}", percent_encode(l)));
        }
        if let Some(n) = self.neuron {
            parts.push(format!("neuron={n}"));
        }
        if let Some(c) = self.class {
            parts.push(format!("class={c}"));
        }
        if self.image == ImageKind::Adversarial {
            parts.push("image=adversarial".into());
        }
        if self.engine == Some(EnginePref::Cpu) {
            parts.push("engine=cpu".into());
        }
        parts.extend(self.attack.query_parts());
        if let Some(k) = self.step {
            parts.push(format!("step={k}"));
        }
        if let Some(c) = &self.compare {
            parts.push(format!("compare={}", percent_encode(c)));
        }
        if let Some(e) = self.embed {
            parts.push(format!("embed={}", e.as_str()));
        }
        format!("?{}", parts.join("&"))
    }

    /// Checks the state against the loaded model: `samples` images, `layers` with their channel
    /// counts, `classes` classes. Out-of-range values fall back, each with a message.
    pub fn validate(&mut self, samples: usize, layers: &[(String, usize)], classes: usize, input_len: usize, concept_world: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if self.concept.is_some() && !concept_world {
            problems.push("?concept= needs a model of the concept world: showing a sample".into());
            self.concept = None;
        }
        if let Some(p) = &self.pixels {
            if p.len() != input_len {
                problems.push(format!("the image in ?pixels= has {} values, this model takes {input_len}: showing a sample instead", p.len()));
                self.pixels = None;
            }
        }
        if self.sample >= samples.max(1) {
            problems.push(format!("there is no sample {} (this model has {samples}, numbered from 0): showing sample 0", self.sample));
            self.sample = 0;
        }
        if let Some(l) = &self.layer {
            if !layers.iter().any(|(name, _)| name == l) {
                let names: Vec<&str> = layers.iter().map(|(n, _)| n.as_str()).collect();
                problems.push(format!("this model has no layer `{l}` (its layers: {}): showing the last one", names.join(", ")));
                self.layer = None;
            }
        }
        let channels = self.layer().and_then(|l| layers.iter().find(|(n, _)| n == l)).or(layers.last()).map_or(0, |(_, c)| *c);
        if let Some(n) = self.neuron {
            if n >= channels {
                problems.push(format!("there is no neuron {n} in this layer (it has {channels}, numbered from 0)"));
                self.neuron = None;
            }
        }
        if let Some(c) = self.class {
            if c >= classes {
                problems.push(format!("there is no class {c} (this model has {classes}): explaining the predicted class"));
                self.class = None;
            }
        }
        if let Some(t) = self.attack.target {
            if t >= classes {
                problems.push(format!("there is no class {t} to aim the attack at (this model has {classes}): attacking without a target"));
                self.attack.target = None;
            }
        }
        if let Some(k) = self.step {
            let steps = self.attack_steps();
            if self.image != ImageKind::Adversarial {
                problems.push(format!("?step={k} shows a step of the attack, with image=adversarial only: showing the real image"));
                self.step = None;
            } else if k == 0 || k > steps {
                problems.push(format!("this attack has steps 1 to {steps}, not {k}: showing its final image"));
                self.step = None;
            } else if k == steps {
                self.step = None; // the last step is the final image
            }
        }
        problems
    }

    /// How many steps the URL's attack takes.
    pub fn attack_steps(&self) -> usize {
        self.attack.resolve(1.0, crate::config::ATTACK_STEPS).steps
    }

    pub fn layer(&self) -> Option<&str> {
        self.layer.as_deref()
    }

    /// A key naming the shown image and the attack that makes its adversarial version.
    pub fn attack_key(&self) -> String {
        format!("{} {}", self.image_key(), self.attack.query_parts().join("&"))
    }

    /// A key naming the image the views show: the real one, or the adversarial one at its step.
    pub fn view_key(&self) -> String {
        match self.image {
            ImageKind::Real => self.image_key(),
            ImageKind::Adversarial => format!("{} step {}", self.attack_key(), self.step.map_or("last".into(), |k| k.to_string())),
        }
    }

    /// A key naming the shown image (a sample or the visitor's own), for caching results.
    pub fn image_key(&self) -> String {
        match &self.pixels {
            None if self.concept.is_some() => format!("concept {}", self.concept.unwrap_or_default()),
            None => format!("sample {}", self.sample),
            Some(p) => {
                // FNV-1a: a stable name for the bytes.
                let hash = p.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
                format!("own {hash:016x}")
            }
        }
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 base64url without padding.
pub fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(BASE64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The inverse of [`base64url_encode`] (padding tolerated); `None` for anything else.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let digit = |c: u8| BASE64URL.iter().position(|&d| d == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let n = chunk.iter().enumerate().try_fold(0u32, |n, (i, &c)| Some(n | digit(c)? << (18 - 6 * i)))?;
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Decodes `%XX` escapes and `+` (a space in query strings); `None` for a broken escape or
/// bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Escapes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_parses_and_round_trips() {
        let (s, problems) = PageState::parse("?model=mnist-pgd&sample=3&layer=relu1&neuron=5&class=7&image=adversarial&engine=cpu&embed=why");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.embed, Some(Embed::Why));
        assert_eq!(PageState::parse("?embed=trace").0.embed, Some(Embed::Why), "the CLI's word works too");
        assert_eq!(s.model.as_deref(), Some("mnist-pgd"));
        assert_eq!((s.sample, s.layer.as_deref(), s.neuron, s.class), (3, Some("relu1"), Some(5), Some(7)));
        assert_eq!((s.image, s.engine), (ImageKind::Adversarial, Some(EnginePref::Cpu)));
        assert_eq!(PageState::parse(&s.to_query()).0, s);
        let (own, _) = PageState::parse("?bundle=https%3A%2F%2Fexample.org%2Fm.advlens.safetensors%3Fv%3D1&sample=2");
        assert_eq!(own.bundle.as_deref(), Some("https://example.org/m.advlens.safetensors?v=1"));
        assert_eq!(PageState::parse(&own.to_query()).0, own, "{}", own.to_query());
    }

    #[test]
    fn an_onnx_files_normalisation_round_trips_and_half_of_one_is_refused() {
        let (s, problems) = PageState::parse("?bundle=m.onnx&mean=0.485,0.456,0.406&std=0.229%2C0.224%2C0.225&classes=imagenet");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(s.onnx.normalisation.as_ref().unwrap().is_imagenet());
        assert!(s.onnx.imagenet_classes);
        assert_eq!(PageState::parse(&s.to_query()).0, s, "{}", s.to_query());
        for (query, words) in [("?mean=0.5", "go together"), ("?std=0.5", "go together"), ("?mean=0.5&std=0", "above 0"), ("?mean=x&std=1", "not a number"), ("?classes=coco", "knows imagenet")] {
            let (s, problems) = PageState::parse(query);
            assert!(s.onnx.is_default(), "{query}");
            assert!(problems.len() == 1 && problems[0].contains(words), "{query}: {problems:?}");
        }
    }

    #[test]
    fn values_are_percent_decoded_and_encoded() {
        let (s, _) = PageState::parse("model=my%20model%2Fv2&layer=a+b");
        assert_eq!(s.model.as_deref(), Some("my model/v2"));
        assert_eq!(s.layer.as_deref(), Some("a b"));
        assert_eq!(PageState::parse(&s.to_query()).0, s);
        assert_eq!(percent_decode("%E2%9C%93"), Some("✓".into()));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn an_attack_step_is_kept_only_on_the_adversarial_image_and_within_the_attack() {
        let layers = [("relu2".to_string(), 32)];
        let check = |query: &str| {
            let (mut s, mut problems) = PageState::parse(query);
            problems.extend(s.validate(10, &layers, 10, 784, false));
            (s, problems)
        };
        let (s, problems) = check("?sample=1&image=adversarial&steps=20&step=7");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.step, Some(7));
        assert!(s.to_query().ends_with("steps=20&step=7"), "{}", s.to_query());
        assert_ne!(s.view_key(), PageState { step: None, ..s.clone() }.view_key(), "each step is its own view");
        assert_ne!(s.view_key(), PageState { image: ImageKind::Real, step: None, ..s.clone() }.view_key());
        assert_eq!(s.attack_key(), PageState { step: None, ..s.clone() }.attack_key(), "the steps share one attack");
        assert_eq!(check("?image=adversarial&steps=20&step=20").0.step, None, "the last step is the final image");
        for (query, says) in [("?step=3", "image=adversarial only"), ("?image=adversarial&step=11", "steps 1 to 10"), ("?image=adversarial&attack=fgsm&step=2", "steps 1 to 1"), ("?image=adversarial&step=0", "not 0")] {
            let (s, problems) = check(query);
            assert_eq!(s.step, None, "{query}");
            assert!(problems.iter().any(|p| p.contains(says)), "{query}: {problems:?}");
        }
    }

    #[test]
    fn bad_values_fall_back_with_a_message() {
        let (s, problems) = PageState::parse("?sample=abc&neuron=-1&engine=bogus&image=fake&model=%zz&other=1&embed=all");
        assert_eq!(s, PageState::default());
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems[2].contains("?engine=bogus is unknown"), "{problems:?}");
    }

    #[test]
    fn base64url_round_trips_and_matches_the_rfc() {
        // RFC 4648 section 10 test vectors, in the URL alphabet without padding.
        for (plain, coded) in [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64url_encode(plain.as_bytes()), coded);
            assert_eq!(base64url_decode(coded).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64url_decode(&base64url_encode(&all)).unwrap(), all);
        assert!(base64url_encode(&[251, 255]).contains('-') || base64url_encode(&[251, 255]).contains('_'));
        assert_eq!(base64url_decode("Zm9v="), Some(b"foo".to_vec()));
        assert_eq!(base64url_decode("Z"), None);
        assert_eq!(base64url_decode("Zm+v"), None, "standard alphabet is not base64url");
    }

    #[test]
    fn an_own_image_travels_in_the_url_and_is_checked_against_the_input_size() {
        let s = PageState { pixels: Some(vec![0, 128, 255, 7]), ..Default::default() };
        let q = s.to_query();
        assert!(q.contains("pixels=AID_Bw") && !q.contains("sample"), "{q}");
        let (back, problems) = PageState::parse(&q);
        assert!(problems.is_empty());
        assert_eq!(back, s);
        assert_ne!(back.image_key(), PageState::default().image_key());
        let mut wrong = back.clone();
        assert_eq!(wrong.validate(16, &[], 10, 784, false).len(), 1);
        assert_eq!(wrong.pixels, None);
        let mut right = back;
        assert!(right.validate(16, &[], 10, 4, false).is_empty());
        assert_eq!(PageState::parse("?pixels=%%").1.len(), 1);
    }

    #[test]
    fn a_concept_image_needs_a_concept_model() {
        let (s, problems) = PageState::parse("?concept=12");
        assert!(problems.is_empty());
        assert_eq!((s.concept, s.to_query().as_str(), s.image_key().as_str()), (Some(12), "?concept=12", "concept 12"));
        let mut wrong = s.clone();
        assert_eq!(wrong.validate(16, &[], 10, 784, false).len(), 1);
        assert_eq!(wrong.concept, None);
        let mut right = s;
        assert!(right.validate(16, &[], 10, 3072, true).is_empty());
        assert_eq!(PageState::parse("?concept=x").1.len(), 1);
    }

    #[test]
    fn validation_against_the_model_names_what_exists() {
        let layers = [("relu1".to_string(), 16), ("relu2".to_string(), 32)];
        let mut s = PageState { sample: 99, layer: Some("conv9".into()), neuron: Some(40), class: Some(10), ..Default::default() };
        let problems = s.validate(16, &layers, 10, 784, false);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[1].contains("relu1, relu2"), "{problems:?}");
        assert_eq!(s, PageState::default());
        // Neuron 20 exists in the last layer (32 channels) but not in relu1 (16).
        let mut s = PageState { neuron: Some(20), ..Default::default() };
        assert!(s.validate(16, &layers, 10, 784, false).is_empty());
        let mut s = PageState { layer: Some("relu1".into()), neuron: Some(20), ..Default::default() };
        assert_eq!(s.validate(16, &layers, 10, 784, false).len(), 1);
    }
}
