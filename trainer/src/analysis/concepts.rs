//! Concept IoU on the concept world (Network Dissection's measure): which part, colour or
//! texture each neuron detects, on real and on adversarial images.

use advlens_shared::concepts::vocab;
use anyhow::{bail, Result};
use tch::{Device, Tensor};

use crate::data::concepts::Masks;

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

