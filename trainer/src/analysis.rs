//! `advlens analyze`: the paper's measurements for one model and layer on real images and on an
//! adversarial set — neuron consistency (consis) on both, CS1 / CS2, the representation ratio r,
//! how well the disagreement of the top traced neurons flags adversarial inputs (ROC AUC), and,
//! on the concept world, concept IoU of every neuron on real and adversarial images.
//! The metric definitions are `advlens_shared::analysis::metrics` (one definition, unit-tested).

use std::collections::BTreeMap;

use advlens_shared::analysis::metrics::{class_histogram, class_similarity, consistency, cosine, representation_ratio, roc_auc};
pub use advlens_shared::analysis::atlas::{AtlasEntry, AtlasMeta, AtlasNeuron, NeuronStats, SheetFormat};
use advlens_shared::concepts::vocab;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::data::concepts::Masks;
use crate::dist::Team;
use crate::net::Net;

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

/// Per image: the layer's responses `[N, C]` (spatial max), features `[N, D]`, maps
/// `[N, C, h, w]` (kept only if `keep_maps`), predictions, and gradient x activation per channel
/// for the predicted class `[N, C]`.
struct LayerPass {
    responses: Tensor,
    /// Where each channel peaks, as a flat index into its map `[N, C]`.
    peaks: Tensor,
    map_width: i64,
    features: Tensor,
    maps: Option<Tensor>,
    predicted: Vec<usize>,
    influence: Tensor,
    /// `[N, C]`: how much the predicted class's logit falls when the channel is zeroed (the
    /// prediction difference; gradient x activation is its first-order estimate).
    ablation: Tensor,
}

/// [`LayerPass`] of `images`, in batches of `batch`. With a `team`, the ranks take the batches
/// in turn and exchange their rows: every rank ends with the whole pass, each batch computed
/// exactly as one process computes it (same batch boundaries), so the results are bitwise equal.
fn pass(net: &Net, images: &Tensor, layer: &str, keep_maps: bool, batch: usize, team: Option<&Team>) -> Result<LayerPass> {
    let n = images.size()[0];
    let batch = batch.max(1) as i64;
    let starts: Vec<i64> = (0..n).step_by(batch as usize).collect();
    let mine = starts.iter().enumerate().filter(|(k, _)| team.is_none_or(|t| t.owns(*k))).map(|(_, &s)| s);
    let parts = mine.map(|start| Ok((start, batch_pass(net, &images.narrow(0, start, (n - start).min(batch)), layer, keep_maps)?))).collect::<Result<Vec<_>>>()?;
    let Some(team) = team else {
        let field = |f: &dyn Fn(&BatchPass) -> &Tensor| Tensor::cat(&parts.iter().map(|(_, p)| f(p)).collect::<Vec<_>>(), 0);
        return Ok(LayerPass {
            responses: field(&|p| &p.responses),
            peaks: field(&|p| &p.peaks).to_device(Device::Cpu),
            map_width: parts.first().map_or(1, |(_, p)| p.map_width),
            features: field(&|p| &p.features),
            maps: keep_maps.then(|| field(&|p| p.maps.as_ref().expect("kept"))),
            predicted: Vec::<i64>::try_from(&field(&|p| &p.predicted).to_device(Device::Cpu))?.into_iter().map(|v| v as usize).collect(),
            influence: field(&|p| &p.influence),
            ablation: field(&|p| &p.ablation),
        });
    };
    // Every rank learns the layer's shape, also one that got no batch.
    let shape = tch::no_grad(|| net.forward_all_t(&images.narrow(0, 0, 1), false))[layer].size();
    if shape.len() != 4 {
        bail!("layer `{layer}` outputs {shape:?}, not feature maps: pick a convolutional layer");
    }
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let (float, long) = ((Kind::Float, images.device()), (Kind::Int64, images.device()));
    let whole = LayerPass {
        responses: Tensor::zeros([n, c], float),
        peaks: Tensor::zeros([n, c], long),
        map_width: w,
        features: Tensor::zeros([n, c * h * w], float),
        maps: keep_maps.then(|| Tensor::zeros([n, c, h, w], float)),
        predicted: Vec::new(),
        influence: Tensor::zeros([n, c], float),
        ablation: Tensor::zeros([n, c], float),
    };
    let predicted = Tensor::zeros([n], long);
    let fields = |p: &LayerPass, predicted: &Tensor| -> Vec<Tensor> {
        let mut v = vec![p.responses.shallow_clone(), p.peaks.shallow_clone(), p.features.shallow_clone(), p.influence.shallow_clone(), p.ablation.shallow_clone(), predicted.shallow_clone()];
        v.extend(p.maps.as_ref().map(Tensor::shallow_clone));
        v
    };
    let targets = fields(&whole, &predicted);
    tch::no_grad(|| {
        for (start, part) in &parts {
            let len = part.responses.size()[0];
            let sources = [&part.responses, &part.peaks, &part.features, &part.influence, &part.ablation, &part.predicted].into_iter().chain(part.maps.as_ref());
            for (target, source) in targets.iter().zip(sources) {
                target.narrow(0, *start, len).copy_(source);
            }
        }
    });
    // Zeros elsewhere: the sum over the ranks is every row exactly once.
    team.sum_tensors(&targets.iter().collect::<Vec<_>>())?;
    Ok(LayerPass {
        peaks: whole.peaks.to_device(Device::Cpu),
        predicted: Vec::<i64>::try_from(&predicted.to_device(Device::Cpu))?.into_iter().map(|v| v as usize).collect(),
        ..whole
    })
}

/// One batch's share of a [`LayerPass`].
struct BatchPass {
    responses: Tensor,
    peaks: Tensor,
    map_width: i64,
    features: Tensor,
    maps: Option<Tensor>,
    predicted: Tensor,
    influence: Tensor,
    ablation: Tensor,
}

fn batch_pass(net: &Net, x: &Tensor, layer: &str, keep_maps: bool) -> Result<BatchPass> {
    let acts = net.forward_all_t(x, false);
    let a = &acts[layer];
    if a.dim() != 4 {
        bail!("layer `{layer}` outputs {:?}, not feature maps: pick a convolutional layer", a.size());
    }
    let logits = &acts[&net.spec().output];
    let p = logits.argmax(-1, false);
    let chosen = logits.gather(1, &p.unsqueeze(1), false).sum(Kind::Float);
    let g = Tensor::run_backward(&[chosen], &[a], false, false).pop().expect("one gradient");
    let a = a.detach();
    // One forward per channel with that channel zeroed: the exact drop of the chosen logit.
    let channels = a.size()[1];
    let full = logits.detach().gather(1, &p.unsqueeze(1), false);
    let per_channel: Vec<Tensor> = tch::no_grad(|| {
        (0..channels)
            .map(|c| {
                let scale = Tensor::ones([1, channels, 1, 1], (Kind::Float, a.device())).index_fill(1, &Tensor::from_slice(&[c]).to_device(a.device()), 0.0);
                &full - net.forward_with_layer_scaled(x, layer, &scale).gather(1, &p.unsqueeze(1), false)
            })
            .collect()
    });
    Ok(BatchPass {
        responses: a.amax([2i64, 3].as_slice(), false),
        peaks: a.flatten(2, -1).argmax(2, false),
        map_width: a.size()[3],
        features: a.flatten(1, -1),
        influence: (&a * g).sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Float),
        ablation: Tensor::cat(&per_channel, 1),
        maps: keep_maps.then(|| a.shallow_clone()),
        predicted: p,
    })
}

/// The indices of the `k` largest values of column `c` of `[N, C]`.
/// The `k` images with the largest responses of channel `c`, and whether all of them make it
/// fire (response > 0).
fn top_k(responses: &Tensor, c: usize, k: usize) -> Result<(Vec<usize>, bool)> {
    let col = responses.select(1, c as i64);
    let k = k.min(col.size()[0] as usize) as i64;
    let (values, idx) = col.topk(k, 0, true, true);
    let fires = k > 0 && values.min().double_value(&[]) > 0.0;
    Ok((Vec::<i64>::try_from(&idx)?.into_iter().map(|v| v as usize).collect(), fires))
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
    let real = pass(net, input.real, input.layer, keep_maps, 250, input.team)?;
    let adv = pass(net, input.adversarial, input.layer, keep_maps, 250, input.team)?;
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
        let real_maps = pass(net, &input.real.narrow(0, 0, m as i64), input.layer, true, 250, input.team)?.maps.expect("kept");
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

/// The receptive field of `layer` in input pixels: (size, jump, start), with unit `i` of the
/// layer centred on input pixel `start + i * jump` (along each axis).
pub fn receptive_field(spec: &advlens_shared::model::ModelSpec, layer: &str) -> (f64, f64, f64) {
    use advlens_shared::model::Op;
    let mut field: std::collections::HashMap<&str, (f64, f64, f64)> = std::collections::HashMap::new();
    field.insert(advlens_shared::model::INPUT_NAME, (1.0, 1.0, 0.0));
    for node in &spec.nodes {
        // Over a DAG, the widest input path.
        let (rf, jump, start) = node.inputs.iter().filter_map(|i| field.get(i.as_str())).cloned().fold((0.0, 1.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
        let (k, st, p) = match node.op {
            // A dilated kernel spans d (k - 1) + 1 pixels.
            Op::Conv2d { kernel, stride, padding, dilation, .. } => (((kernel - 1) * dilation + 1) as f64, stride as f64, padding as f64),
            Op::MaxPool2d { kernel, stride, padding } | Op::AvgPool2d { kernel, stride, padding } => {
                (kernel as f64, stride as f64, padding as f64)
            }
            _ => (1.0, 1.0, 0.0),
        };
        field.insert(node.name.as_str(), (rf + (k - 1.0) * jump, jump * st, start + ((k - 1.0) / 2.0 - p) * jump));
        if node.name == layer {
            break;
        }
    }
    field.get(layer).cloned().unwrap_or((1.0, 1.0, 0.0))
}

/// JPEG quality of colour sprite sheets: patches stay sharp at the page's enlargement.
const SHEET_JPEG_QUALITY: u8 = 90;

/// The neuron atlas of one model and layer.
pub struct Atlas {
    pub meta: AtlasMeta,
    pub real: image::RgbImage,
    pub adversarial: image::RgbImage,
}

impl Atlas {
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("atlas.json"), serde_json::to_string(&self.meta)? + "\n")?;
        for (kind, sheet) in [("real", &self.real), ("adversarial", &self.adversarial)] {
            let path = dir.join(self.meta.sheets.file(kind));
            let written = match self.meta.sheets {
                SheetFormat::Png => sheet.save(&path),
                SheetFormat::Jpeg => std::fs::File::create(&path)
                    .map_err(image::ImageError::IoError)
                    .and_then(|f| image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(f), SHEET_JPEG_QUALITY).encode_image(sheet)),
            };
            written.with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

fn build_atlas(input: &AnalyzeInput, real: &LayerPass, adv: &LayerPass, neurons: &[NeuronStats]) -> Result<Atlas> {
    let spec = input.net.spec();
    let (c, h, w) = (spec.input.channels, spec.input.height, spec.input.width);
    let (rf, jump, start) = receptive_field(spec, input.layer);
    let patch = (rf.ceil() as usize).max(8).min(h.min(w));
    let k = input.top_k;
    let gap = advlens_shared::analysis::atlas::GAP as u32;
    let cell = patch as u32 + gap;
    let sheet = || image::RgbImage::from_pixel(cell * k as u32, cell * neurons.len() as u32, image::Rgb([255, 255, 255]));
    let (mut real_sheet, mut adv_sheet) = (sheet(), sheet());
    let mut rows = Vec::with_capacity(neurons.len());
    let real_images = input.real.to_device(Device::Cpu);
    let adv_images = input.adversarial.to_device(Device::Cpu);
    for (row, stats) in neurons.iter().enumerate() {
        let mut entries = [Vec::new(), Vec::new()];
        for (which, (pass, images, sheet)) in [(real, &real_images, &mut real_sheet), (adv, &adv_images, &mut adv_sheet)].into_iter().enumerate() {
            for (col, i) in top_k(&pass.responses, stats.channel, k)?.0.into_iter().enumerate() {
                let peak = pass.peaks.int64_value(&[i as i64, stats.channel as i64]);
                let (py, px) = ((peak / pass.map_width) as f64, (peak % pass.map_width) as f64);
                let corner = |centre: f64, side: usize| ((centre - patch as f64 / 2.0).round().max(0.0) as usize).min(side - patch);
                let (y0, x0) = (corner(start + py * jump, h), corner(start + px * jump, w));
                let pixels = Vec::<f32>::try_from(images.get(i as i64).flatten(0, -1))?;
                for y in 0..patch {
                    for x in 0..patch {
                        let rgb = std::array::from_fn(|ch| (255.0 * pixels[ch.min(c - 1) * h * w + (y0 + y) * w + x0 + x]).round().clamp(0.0, 255.0) as u8);
                        sheet.put_pixel(col as u32 * cell + x as u32, row as u32 * cell + y as u32, image::Rgb(rgb));
                    }
                }
                let (label, target) = if which == 0 {
                    (input.real_labels[i], None)
                } else {
                    (input.adv_source[i], input.adv_target.map(|t| t[i]))
                };
                let response = pass.responses.double_value(&[i as i64, stats.channel as i64]) as f32;
                entries[which].push(AtlasEntry { image: i, label, target, response, x: x0, y: y0 });
            }
        }
        let [real_entries, adv_entries] = entries;
        rows.push(AtlasNeuron { stats: stats.clone(), real: real_entries, adversarial: adv_entries });
    }
    let meta = AtlasMeta {
        model: spec.name.clone(),
        layer: input.layer.into(),
        classes: spec.classes.clone(),
        patch,
        receptive_field: rf,
        top_k: k,
        neurons: rows,
        // Colour patches are photographs, which JPEG stores in a fraction of PNG's bytes.
        sheets: if c == 3 { SheetFormat::Jpeg } else { SheetFormat::Png },
    };
    Ok(Atlas { meta, real: real_sheet, adversarial: adv_sheet })
}

/// Network Dissection's per-neuron threshold: the top 0.5% of all its activation values
/// (`advlens_shared::analysis::metrics::top_quantile`).
pub fn concept_thresholds(maps: &Tensor) -> Result<Vec<f32>> {
    let c = maps.size()[1];
    let per_channel = maps.transpose(0, 1).reshape([c, -1]).to_device(Device::Cpu);
    (0..c)
        .map(|ch| Ok(advlens_shared::analysis::metrics::top_quantile(&Vec::<f32>::try_from(per_channel.get(ch))?, 0.005)))
        .collect()
}

/// The best concept (category, name, IoU) of each channel: activation maps upsampled to the
/// image, thresholded, compared with every concept mask; intersections and unions summed over
/// the images before dividing.
pub fn concept_iou(maps: &Tensor, thresholds: &[f32], masks: &[Masks]) -> Result<Vec<Option<(String, String, f64)>>> {
    let (n, c) = (maps.size()[0] as usize, maps.size()[1] as usize);
    if masks.len() < n {
        bail!("{} images but only {} masks", n, masks.len());
    }
    let side = (masks[0].parts.len() as f64).sqrt() as usize;
    let up = maps.upsample_bilinear2d([side as i64, side as i64], false, None, None).to_device(Device::Cpu);
    // Concepts: (category, name, bit set per pixel).
    let categories: [(&str, Vec<&str>); 4] = [
        ("object", vocab::OBJECTS.iter().map(|o| o.name).collect()),
        ("part", vocab::PARTS.iter().map(|p| p.name).collect()),
        ("colour", vocab::COLOURS.iter().map(|c| c.0).collect()),
        ("texture", vocab::TEXTURES.to_vec()),
    ];
    let offsets = [0usize, 10, 10 + vocab::PARTS.len(), 10 + vocab::PARTS.len() + vocab::COLOURS.len()];
    let total = offsets[3] + vocab::TEXTURES.len();
    let bits = |m: &Masks, p: usize| -> [u64; 4] { [u64::from(m.object[p]), u64::from(m.parts[p]), u64::from(m.colour[p]), u64::from(m.texture[p])] };
    let mut inter = vec![vec![0u64; total]; c];
    let mut act_count = vec![0u64; c];
    let mut concept_count = vec![0u64; total];
    for (i, m) in masks.iter().enumerate().take(n) {
        for p in 0..side * side {
            let b = bits(m, p);
            for (cat, &off) in offsets.iter().enumerate() {
                let mut v = b[cat];
                while v != 0 {
                    concept_count[off + v.trailing_zeros() as usize] += 1;
                    v &= v - 1;
                }
            }
        }
        let img = Vec::<f32>::try_from(up.get(i as i64).flatten(0, -1))?;
        for ch in 0..c {
            let plane = &img[ch * side * side..(ch + 1) * side * side];
            for (p, &v) in plane.iter().enumerate() {
                if v > thresholds[ch] {
                    act_count[ch] += 1;
                    let b = bits(m, p);
                    for (cat, &off) in offsets.iter().enumerate() {
                        let mut v = b[cat];
                        while v != 0 {
                            inter[ch][off + v.trailing_zeros() as usize] += 1;
                            v &= v - 1;
                        }
                    }
                }
            }
        }
    }
    Ok((0..c)
        .map(|ch| {
            let mut best: Option<(String, String, f64)> = None;
            for (cat, (name, names)) in categories.iter().enumerate() {
                for (k, concept) in names.iter().enumerate() {
                    let j = offsets[cat] + k;
                    let union = act_count[ch] + concept_count[j] - inter[ch][j];
                    let iou = if union == 0 { 0.0 } else { inter[ch][j] as f64 / union as f64 };
                    if best.as_ref().is_none_or(|b| iou > b.2) {
                        best = Some((name.to_string(), concept.to_string(), iou));
                    }
                }
            }
            best
        })
        .collect())
}

impl AnalysisReport {
    /// A Markdown summary: the paper's claims with our numbers.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## {} — layer `{}`\n\n{} real images, {} adversarial ({} successful), top-{} images per neuron, {} neurons ({} silent: \
             they fire on fewer than {} real or adversarial images and are left out of the means).\n\n",
            self.model, self.layer, self.real_images, self.adversarial_images, self.successful, self.top_k, self.neurons.len(),
            self.silent_neurons, self.top_k
        );
        s += "| measure | value |\n|---|---|\n";
        s += &format!("| mean consis, real top images | {:.3} |\n", self.mean_consis_real);
        s += &format!("| mean consis, adversarial top images by source class | {:.3} |\n", self.mean_consis_adv_source);
        if let Some(v) = self.mean_consis_adv_target {
            s += &format!("| mean consis, adversarial top images by target class | {v:.3} |\n");
        }
        s += &format!("| mean CS1 (real vs adversarial-by-source histograms) | {:.3} |\n", self.mean_cs1);
        if let Some(v) = self.mean_cs2 {
            s += &format!("| mean CS2 (real vs adversarial-by-target histograms) | {v:.3} |\n");
        }
        if let Some(o) = &self.successful_only {
            s += &format!(
                "| successful adversarial images only ({}; {} neurons): consis by source, CS1, CS2 | {:.3}, {:.3}, {} |\n",
                o.images,
                o.neurons,
                o.mean_consis_adv_source,
                o.mean_cs1,
                o.mean_cs2.map_or("-".into(), |v| format!("{v:.3}"))
            );
        }
        if let Some(f) = self.fraction_r_above_1 {
            let mut r = self.r.clone();
            r.sort_by(f64::total_cmp);
            s += &format!("| representation ratio r > 1 (nearer the target class) | {:.1}% of {} (median r {:.3}) |\n", 100.0 * f, r.len(), r[r.len() / 2]);
        }
        if let Some(a) = self.trace_auc {
            s += &format!("| ROC AUC, top-{} neuron disagreement flags adversarial inputs | {a:.3} |\n", self.trace_top);
        }
        if let Some(a) = self.trace_auc_ablation {
            s += &format!("| the same, neurons ranked by the prediction difference (logit fall when zeroed) | {a:.3} |\n");
        }
        if !self.detectors_real.is_empty() || !self.detectors_adv.is_empty() {
            s += &format!("| concept detectors (IoU > 0.04), real images | {:?} |\n", self.detectors_real);
            s += &format!("| concept detectors (IoU > 0.04), adversarial images | {:?} |\n", self.detectors_adv);
        }
        s
    }
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
