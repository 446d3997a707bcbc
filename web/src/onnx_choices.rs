//! What an ONNX file cannot say about its model, chosen by the visitor under "Open your own
//! model" and kept in the URL: how its pixels are normalised (`?mean=&std=`, as `advlens import
//! --mean --std`) and whether its outputs are ImageNet's classes (`?classes=imagenet`, as
//! `advlens import --classes imagenet`).
//!
//! torchvision and timm models expect ImageNet's normalisation, others [0, 1] pixels. Without a
//! choice the importer feeds [0, 1] (or 0-255 to a graph that rescales its input itself) and
//! numbers the classes.

use serde::{Deserialize, Serialize};

/// The visitor's choices for an ONNX file (the defaults: as the file says).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OnnxChoices {
    pub normalisation: Option<Normalisation>,
    /// Its 1000 outputs are ImageNet's classes: named as torchvision names them.
    #[serde(default)]
    pub imagenet_classes: bool,
}

impl OnnxChoices {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The importer's options for these choices.
    pub fn import_options(&self, name: &str) -> advlens_shared::onnx::ImportOptions {
        advlens_shared::onnx::ImportOptions {
            name: name.into(),
            classes: self.imagenet_classes.then(advlens_shared::onnx::imagenet_classes),
            mean: self.normalisation.as_ref().map(|n| n.mean.clone()),
            std: self.normalisation.as_ref().map(|n| n.std.clone()),
            ..Default::default()
        }
    }
}

/// Per-channel mean and std: the model reads `(pixel - mean) / std`, pixels in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// The values torchvision's and timm's ImageNet models were trained with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Normalisation {
    pub fn imagenet() -> Self {
        Normalisation { mean: IMAGENET_MEAN.to_vec(), std: IMAGENET_STD.to_vec() }
    }

    pub fn is_imagenet(&self) -> bool {
        *self == Self::imagenet()
    }

    /// From the text of the page's two fields or of `?mean=` and `?std=`: numbers separated
    /// by commas or spaces, one per channel or one for all; every std above 0.
    pub fn parse(mean: &str, std: &str) -> Result<Self, String> {
        let mean = numbers("mean", mean)?;
        let std = numbers("std", std)?;
        if mean.len() != std.len() {
            return Err(format!("the mean has {} values and the std {}: give as many of each (one per channel, or one for all)", mean.len(), std.len()));
        }
        if let Some(s) = std.iter().find(|s| **s <= 0.0) {
            return Err(format!("a std of {s} would divide by zero or flip the image: every std must be above 0"));
        }
        Ok(Normalisation { mean, std })
    }

    /// The `?mean=` value (`?std=`'s is [`Self::std_text`]).
    pub fn mean_text(&self) -> String {
        join(&self.mean)
    }

    pub fn std_text(&self) -> String {
        join(&self.std)
    }
}

fn numbers(what: &str, text: &str) -> Result<Vec<f32>, String> {
    let values: Vec<&str> = text.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).collect();
    if values.is_empty() {
        return Err(format!("no {what} given: type one number per channel (for ImageNet models 0.485, 0.456, 0.406 and 0.229, 0.224, 0.225)"));
    }
    if values.len() > 3 {
        return Err(format!("{} {what} values given: images have 1 (grey) or 3 (colour) channels", values.len()));
    }
    values
        .iter()
        .map(|v| v.parse::<f32>().ok().filter(|x| x.is_finite()).ok_or_else(|| format!("the {what} “{v}” is not a number")))
        .collect()
}

fn join(values: &[f32]) -> String {
    values.iter().map(f32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_type_and_refuses_what_cannot_work() {
        let n = Normalisation::parse("0.485, 0.456, 0.406", "0.229 0.224 0.225").unwrap();
        assert!(n.is_imagenet());
        assert_eq!(Normalisation::parse(&n.mean_text(), &n.std_text()).unwrap(), n);
        assert_eq!(Normalisation::parse("0.5", "0.25").unwrap(), Normalisation { mean: vec![0.5], std: vec![0.25] });
        for (mean, std, words) in [
            ("0.5,0.5", "0.2", "as many"),
            ("0.5", "0", "above 0"),
            ("0.5", "-1", "above 0"),
            ("", "1", "no mean"),
            ("a", "1", "“a” is not a number"),
            ("NaN", "1", "not a number"),
            ("1,2,3,4", "1,1,1,1", "1 (grey) or 3"),
        ] {
            let e = Normalisation::parse(mean, std).unwrap_err();
            assert!(e.contains(words), "{mean} / {std}: {e}");
        }
    }
}
