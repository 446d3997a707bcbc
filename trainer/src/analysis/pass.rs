//! One pass of a network over images at one layer: what every analysis reads (responses, peaks,
//! features, maps, predictions, gradient x activation and the exact prediction difference per
//! channel), in batches, optionally split across the ranks of a distributed job.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::dist::Team;
use crate::net::Net;

/// Per image: the layer's responses `[N, C]` (spatial max), features `[N, D]`, maps
/// `[N, C, h, w]` (kept only if `keep_maps`), predictions, and gradient x activation per channel
/// for the predicted class `[N, C]`.
pub(super) struct LayerPass {
    pub(super) responses: Tensor,
    /// Where each channel peaks, as a flat index into its map `[N, C]`.
    pub(super) peaks: Tensor,
    pub(super) map_width: i64,
    pub(super) features: Tensor,
    pub(super) maps: Option<Tensor>,
    pub(super) predicted: Vec<usize>,
    pub(super) influence: Tensor,
    /// `[N, C]`: how much the predicted class's logit falls when the channel is zeroed (the
    /// prediction difference; gradient x activation is its first-order estimate).
    pub(super) ablation: Tensor,
}

/// [`LayerPass`] of `images`, in batches of `batch`. With a `team`, the ranks take the batches
/// in turn and exchange their rows: every rank ends with the whole pass, each batch computed
/// exactly as one process computes it (same batch boundaries), so the results are bitwise equal.
pub(super) fn pass(net: &Net, images: &Tensor, layer: &str, keep_maps: bool, batch: usize, team: Option<&Team>) -> Result<LayerPass> {
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
    // Per channel, the network's tail after `layer` with that channel zeroed (the nodes before
    // it are reused): the exact drop of the chosen logit.
    let channels = a.size()[1];
    let full = logits.detach().gather(1, &p.unsqueeze(1), false);
    let per_channel: Vec<Tensor> = tch::no_grad(|| {
        (0..channels)
            .map(|c| {
                let scale = Tensor::ones([1, channels, 1, 1], (Kind::Float, a.device())).index_fill(1, &Tensor::from_slice(&[c]).to_device(a.device()), 0.0);
                &full - net.forward_after(&acts, layer, &(&a * &scale)).gather(1, &p.unsqueeze(1), false)
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
pub(super) fn top_k(responses: &Tensor, c: usize, k: usize) -> Result<(Vec<usize>, bool)> {
    let col = responses.select(1, c as i64);
    let k = k.min(col.size()[0] as usize) as i64;
    let (values, idx) = col.topk(k, 0, true, true);
    let fires = k > 0 && values.min().double_value(&[]) > 0.0;
    Ok((Vec::<i64>::try_from(&idx)?.into_iter().map(|v| v as usize).collect(), fires))
}
