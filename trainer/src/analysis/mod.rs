//! `advlens analyze`: the paper's measurements for one model and layer on real images and on an
//! adversarial set — neuron consistency (consis) on both, CS1 / CS2, the representation ratio r,
//! how well the disagreement of the top traced neurons flags adversarial inputs (ROC AUC), and,
//! on the concept world, concept IoU of every neuron on real and adversarial images.
//! The metric definitions are `advlens_shared::analysis::metrics` (one definition, unit-tested).

use std::collections::BTreeMap;

use advlens_shared::analysis::metrics::{class_histogram, class_similarity, consistency, cosine, representation_ratio, roc_auc};
pub use advlens_shared::analysis::atlas::{AtlasEntry, AtlasMeta, AtlasNeuron, NeuronStats, SheetFormat};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::data::concepts::Masks;
use crate::dist::Team;
use crate::net::Net;

mod atlas;
mod concepts;
mod markdown;
mod pass;

pub use atlas::{receptive_field, Atlas};
pub use concepts::{concept_iou, concept_thresholds};
use pass::{pass, top_k, LayerPass};
use atlas::build_atlas;

/// Everything `analyze` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnalysisReport {
    pub model: String,
    pub layer: String,
    pub top_k: usize,
    pub real_images: usize,
    pub adversarial_images: usize,
    /// Adversarial images that reach their target (or, untargeted, change the prediction).
    pub successful: usize,
    pub neurons: Vec<NeuronStats>,
    /// Neurons left out of the means below (see `NeuronStats::silent`).
    #[serde(default)]
    pub silent_neurons: usize,
    /// Means over the neurons that are not silent (0 when all are).
    pub mean_consis_real: f64,
    pub mean_consis_adv_source: f64,
    pub mean_consis_adv_target: Option<f64>,
    pub mean_cs1: f64,
    pub mean_cs2: Option<f64>,
    /// r of each successful targeted adversarial image.
    pub r: Vec<f64>,
    pub fraction_r_above_1: Option<f64>,
    /// ROC AUC of the top-neuron disagreement score: successful adversarial (positive) vs
    /// correctly classified real images (negative).
    pub trace_auc: Option<f64>,
    /// The same with the top neurons ranked by the prediction difference (the exact fall of
    /// the predicted logit when the neuron is zeroed) instead of gradient x activation.
    #[serde(default)]
    pub trace_auc_ablation: Option<f64>,
    pub trace_top: usize,
    /// Concept detectors (IoU > 0.04) per category, on real and on adversarial images.
    pub detectors_real: BTreeMap<String, usize>,
    pub detectors_adv: BTreeMap<String, usize>,
    /// consis and CS with the adversarial top-K taken among the successful adversarial images
    /// only. The means above use every adversarial image, as the definition says; on a robust
    /// model most attacks fail, their images still look like (and are classified as) their
    /// source, and they pull CS1 up by themselves. This separates the two.
    #[serde(default)]
    pub successful_only: Option<SubsetMeans>,
}

/// Means over the neurons that fire on all their top-K real and top-K adversarial images of a
/// subset of the adversarial set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubsetMeans {
    pub images: usize,
    pub neurons: usize,
    pub mean_consis_adv_source: f64,
    pub mean_cs1: f64,
    pub mean_cs2: Option<f64>,
}

/// Inputs of [`analyze`].
pub struct AnalyzeInput<'a> {
    pub net: &'a Net,
    pub layer: &'a str,
    pub real: &'a Tensor,
    pub real_labels: &'a [usize],
    pub adversarial: &'a Tensor,
    pub adv_source: &'a [usize],
    pub adv_target: Option<&'a [usize]>,
    /// Concept masks of the real images that the adversarial ones were made from, aligned with
    /// `adversarial` (`adversarial[k]` was made from the image with masks `masks[k]`).
    pub masks: Option<&'a [Masks]>,
    pub top_k: usize,
    pub trace_top: usize,
    /// Also build the neuron atlas (top real and adversarial patches of every neuron).
    pub atlas: bool,
    /// Split the network passes across the ranks of a distributed job (every rank gets the
    /// same result).
    pub team: Option<&'a Team>,
}

/// What [`analyze`] produces: the report, and the neuron atlas when asked for.
pub struct Analysis {
    pub report: AnalysisReport,
    pub atlas: Option<Atlas>,
}

pub fn analyze(input: &AnalyzeInput) -> Result<Analysis> {
    let net = input.net;
    let spec = net.spec();
    let classes = spec.classes.len();
    let sim = class_similarity(&spec.classes, &spec.hierarchy);
    let keep_maps = input.masks.is_some();
    let batch = batch_size(input.real);
    let real = pass(net, input.real, input.layer, keep_maps, batch, input.team)?;
    let adv = pass(net, input.adversarial, input.layer, keep_maps, batch, input.team)?;
    let channels = real.responses.size()[1] as usize;
    let m = input.adv_source.len();
    let success: Vec<bool> = (0..m)
        .map(|i| match input.adv_target {
            Some(t) => adv.predicted[i] == t[i],
            None => adv.predicted[i] != input.adv_source[i],
        })
        .collect();

    let mut neurons = Vec::with_capacity(channels);
    for c in 0..channels {
        let (top_real, fires_real) = top_k(&real.responses, c, input.top_k)?;
        let (top_adv, fires_adv) = top_k(&adv.responses, c, input.top_k)?;
        let h_real = class_histogram(&top_real.iter().map(|&i| input.real_labels[i]).collect::<Vec<_>>(), classes);
        let h_src = class_histogram(&top_adv.iter().map(|&i| input.adv_source[i]).collect::<Vec<_>>(), classes);
        let h_tgt = input.adv_target.map(|t| class_histogram(&top_adv.iter().map(|&i| t[i]).collect::<Vec<_>>(), classes));
        let real_class = h_real.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        neurons.push(NeuronStats {
            channel: c,
            consis_real: consistency(&h_real, &sim),
            consis_adv_source: consistency(&h_src, &sim),
            consis_adv_target: h_tgt.as_ref().map(|h| consistency(h, &sim)),
            cs1: cosine(&h_real, &h_src),
            cs2: h_tgt.as_ref().map(|h| cosine(&h_real, h)),
            real_class,
            concept: None,
            concept_adv: None,
            silent: !(fires_real && fires_adv),
        });
    }

    let successful_only = subset_means(input, &real.responses, &adv.responses, &success, &sim, classes)?;

    // r: class means of the real features, distances of the successful adversarial features.
    let mut r = Vec::new();
    if let Some(t) = input.adv_target {
        let feats = real.features.to_device(Device::Cpu);
        let mut means = Vec::with_capacity(classes);
        for k in 0..classes {
            let idx: Vec<i64> = (0..input.real_labels.len()).filter(|&i| input.real_labels[i] == k).map(|i| i as i64).collect();
            means.push(if idx.is_empty() { None } else { Some(Vec::<f32>::try_from(feats.index_select(0, &Tensor::from_slice(&idx)).mean_dim([0i64].as_slice(), false, Kind::Float))?) });
        }
        let adv_feats = adv.features.to_device(Device::Cpu);
        for i in (0..m).filter(|&i| success[i]) {
            if let (Some(ms), Some(mt)) = (&means[input.adv_source[i]], &means[t[i]]) {
                let phi = Vec::<f32>::try_from(adv_feats.get(i as i64))?;
                r.push(representation_ratio(&phi, ms, mt));
            }
        }
    }

    // Tracing: the share of the top neurons (by gradient x activation for the predicted class)
    // whose real-image class is not the predicted one. Silent neurons have no real-image class
    // worth the name (their top-K is tied zeros in image order): they are never among the top.
    let firing: Vec<i64> = neurons.iter().filter(|n| !n.silent).map(|n| n.channel as i64).collect();
    let firing_index = Tensor::from_slice(&firing);
    let disagreement = |pass: &LayerPass, i: usize, exact: bool| -> Result<f64> {
        if firing.is_empty() {
            return Ok(0.0);
        }
        let scores = if exact { &pass.ablation } else { &pass.influence };
        let row = scores.get(i as i64).to_device(Device::Cpu).index_select(0, &firing_index);
        let (_, at) = row.topk(input.trace_top.min(firing.len()) as i64, 0, true, true);
        let idx: Vec<i64> = Vec::<i64>::try_from(&at)?.into_iter().map(|k| firing[k as usize]).collect();
        Ok(idx.iter().filter(|&&c| neurons[c as usize].real_class != pass.predicted[i]).count() as f64 / idx.len().max(1) as f64)
    };
    let auc = |exact: bool| -> Result<Option<f64>> {
        let negatives: Vec<f64> =
            (0..input.real_labels.len()).filter(|&i| real.predicted[i] == input.real_labels[i]).map(|i| disagreement(&real, i, exact)).collect::<Result<_>>()?;
        let positives: Vec<f64> = (0..m).filter(|&i| success[i]).map(|i| disagreement(&adv, i, exact)).collect::<Result<_>>()?;
        Ok((!positives.is_empty() && !negatives.is_empty()).then(|| roc_auc(&positives, &negatives)))
    };
    let (trace_auc, trace_auc_ablation) = (auc(false)?, auc(true)?);

    let (mut detectors_real, mut detectors_adv) = (BTreeMap::new(), BTreeMap::new());
    if let Some(masks) = input.masks {
        // The real images of the concept analysis are the ones the adversarial set came from.
        let real_maps = pass(net, &input.real.narrow(0, 0, m as i64), input.layer, true, batch, input.team)?.maps.expect("kept");
        let thresholds = concept_thresholds(&real_maps)?;
        let best_real = concept_iou(&real_maps, &thresholds, masks)?;
        let best_adv = concept_iou(adv.maps.as_ref().expect("kept"), &thresholds, masks)?;
        for (c, n) in neurons.iter_mut().enumerate() {
            n.concept = best_real[c].clone();
            n.concept_adv = best_adv[c].clone();
            for (best, count) in [(&best_real[c], &mut detectors_real), (&best_adv[c], &mut detectors_adv)] {
                if let Some((cat, _, iou)) = best {
                    if *iou > 0.04 {
                        *count.entry(cat.clone()).or_insert(0) += 1;
                    }
                }
            }
        }
    }

    let atlas = if input.atlas { Some(build_atlas(input, &real, &adv, &neurons)?) } else { None };
    // Means over the neurons that fire on all their top images (see `NeuronStats::silent`).
    let firing = neurons.iter().filter(|n| !n.silent).count();
    let mean = |f: &dyn Fn(&NeuronStats) -> f64| neurons.iter().filter(|n| !n.silent).map(f).sum::<f64>() / firing.max(1) as f64;
    let above = (!r.is_empty()).then(|| r.iter().filter(|&&v| v > 1.0).count() as f64 / r.len() as f64);
    let report = AnalysisReport {
        model: spec.name.clone(),
        layer: input.layer.into(),
        top_k: input.top_k,
        real_images: input.real_labels.len(),
        adversarial_images: m,
        successful: success.iter().filter(|&&s| s).count(),
        silent_neurons: channels - firing,
        mean_consis_real: mean(&|n| n.consis_real),
        mean_consis_adv_source: mean(&|n| n.consis_adv_source),
        mean_consis_adv_target: input.adv_target.map(|_| mean(&|n| n.consis_adv_target.unwrap_or(0.0))),
        mean_cs1: mean(&|n| n.cs1),
        mean_cs2: input.adv_target.map(|_| mean(&|n| n.cs2.unwrap_or(0.0))),
        neurons,
        r,
        fraction_r_above_1: above,
        trace_auc,
        trace_auc_ablation,
        trace_top: input.trace_top,
        detectors_real,
        detectors_adv,
        successful_only,
    };
    Ok(Analysis { report, atlas })
}

/// Images per batch of a pass: 250 CIFAR-size images (a gradient through the whole network is
/// kept per batch), fewer of larger ones — 5 at ImageNet's 224 px, where 250 took 9 GB.
fn batch_size(images: &Tensor) -> usize {
    let per_image: i64 = images.size()[1..].iter().product();
    (250 * 3 * 32 * 32 / per_image.max(1)).clamp(1, 250) as usize
}

/// [`SubsetMeans`] over the adversarial images where `keep` is true; none when fewer than K are.
fn subset_means(input: &AnalyzeInput, real: &Tensor, adv: &Tensor, keep: &[bool], sim: &[Vec<f64>], classes: usize) -> Result<Option<SubsetMeans>> {
    let kept: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
    if kept.len() < input.top_k {
        return Ok(None);
    }
    let index = Tensor::from_slice(&kept.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(adv.device());
    let adv = adv.index_select(0, &index);
    let (mut n, mut consis, mut cs1, mut cs2) = (0usize, 0.0, 0.0, 0.0);
    for c in 0..real.size()[1] as usize {
        let (top_real, fires_real) = top_k(real, c, input.top_k)?;
        let (top_adv, fires_adv) = top_k(&adv, c, input.top_k)?;
        if !(fires_real && fires_adv) {
            continue;
        }
        let h_real = class_histogram(&top_real.iter().map(|&i| input.real_labels[i]).collect::<Vec<_>>(), classes);
        let h_src = class_histogram(&top_adv.iter().map(|&i| input.adv_source[kept[i]]).collect::<Vec<_>>(), classes);
        n += 1;
        consis += consistency(&h_src, sim);
        cs1 += cosine(&h_real, &h_src);
        if let Some(t) = input.adv_target {
            cs2 += cosine(&h_real, &class_histogram(&top_adv.iter().map(|&i| t[kept[i]]).collect::<Vec<_>>(), classes));
        }
    }
    let d = n.max(1) as f64;
    Ok(Some(SubsetMeans {
        images: kept.len(),
        neurons: n,
        mean_consis_adv_source: consis / d,
        mean_cs1: cs1 / d,
        mean_cs2: input.adv_target.map(|_| cs2 / d),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DatasetKind;

    #[test]
    fn silent_neurons_are_marked_and_left_out_of_the_means() {
        tch::manual_seed(1);
        let (mean, std) = DatasetKind::Mnist.normalization();
        let input = advlens_shared::model::InputSpec { channels: 1, height: 28, width: 28, mean, std };
        let spec = crate::arch::build("small-cnn", "t", input, DatasetKind::Mnist.classes(), 4).unwrap();
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), &spec);
        // Silence channel 0 of relu2 with a bias no image can overcome.
        tch::no_grad(|| {
            let _ = vs.variables()["conv2.bias"].get(0).fill_(-1e6);
        });
        let real = Tensor::rand([60, 1, 28, 28], (Kind::Float, Device::Cpu));
        let adversarial = Tensor::rand([40, 1, 28, 28], (Kind::Float, Device::Cpu));
        let labels: Vec<usize> = (0..60).map(|i| i % 10).collect();
        let source: Vec<usize> = (0..40).map(|i| i % 10).collect();
        let target: Vec<usize> = (0..40).map(|i| (i + 3) % 10).collect();
        let input = AnalyzeInput {
            net: &net,
            layer: "relu2",
            real: &real,
            real_labels: &labels,
            adversarial: &adversarial,
            adv_source: &source,
            adv_target: Some(&target),
            masks: None,
            top_k: 10,
            trace_top: 3,
            atlas: false,
            team: None,
        };
        let report = analyze(&input).unwrap().report;
        assert!(report.neurons[0].silent);
        let firing: Vec<&NeuronStats> = report.neurons.iter().filter(|n| !n.silent).collect();
        assert!(!firing.is_empty(), "a random small-cnn should have firing neurons");
        assert_eq!(report.silent_neurons, report.neurons.len() - firing.len());
        let mean = |f: fn(&NeuronStats) -> f64| firing.iter().map(|n| f(n)).sum::<f64>() / firing.len() as f64;
        assert!((report.mean_consis_real - mean(|n| n.consis_real)).abs() < 1e-12);
        assert!((report.mean_cs1 - mean(|n| n.cs1)).abs() < 1e-12);
        // The subset of every adversarial image is the whole set: the same means.
        let sim = class_similarity(&spec.classes, &spec.hierarchy);
        let real_pass = pass(&net, &real, "relu2", false, 250, None).unwrap();
        let adv_pass = pass(&net, &adversarial, "relu2", false, 250, None).unwrap();
        let all = subset_means(&input, &real_pass.responses, &adv_pass.responses, &[true; 40], &sim, 10).unwrap().unwrap();
        assert_eq!((all.images, all.neurons), (40, firing.len()));
        assert!((all.mean_cs1 - report.mean_cs1).abs() < 1e-12 && (all.mean_consis_adv_source - report.mean_consis_adv_source).abs() < 1e-12);
        assert!((all.mean_cs2.unwrap() - report.mean_cs2.unwrap()).abs() < 1e-12);
        // Fewer kept images than K: no means.
        let few: Vec<bool> = (0..40).map(|i| i < 9).collect();
        assert!(subset_means(&input, &real_pass.responses, &adv_pass.responses, &few, &sim, 10).unwrap().is_none());
    }
}
