//! `advlens trace`: the neurons behind one prediction, with the shared engine's tracing (the same
//! code the explorer runs), as text and as a PNG of the top neurons' activation maps.

use std::path::Path;

use advlens_shared::analysis::trace::{trace, Influence};
use advlens_shared::engine::Engine;
use advlens_shared::tensor::{argmax, softmax};
use advlens_shared::Tensor;
use anyhow::{Context, Result};

use crate::analysis::AnalysisReport;

/// The traced prediction.
pub struct Traced {
    pub predicted: usize,
    pub probability: f32,
    pub class: usize,
    pub influences: Vec<Influence>,
    /// The layer's maps `[C, h, w]` of this image.
    pub maps: Tensor,
}

pub fn run(engine: &Engine, image: &Tensor, class: Option<usize>, layer: &str) -> Result<Traced> {
    let probs = softmax(pollster::block_on(engine.forward(image))?.row(0));
    let predicted = argmax(&probs);
    let class = class.unwrap_or(predicted);
    let influences = pollster::block_on(trace(engine, image, class, layer))?;
    let mut acts = pollster::block_on(engine.activations(image, &[layer]))?;
    let maps = acts.remove(layer).context("the engine returned no activations")?;
    Ok(Traced { predicted, probability: probs[predicted], class, influences, maps })
}

/// Text lines: one per top neuron, with what `analysis` (if given) says about it.
pub fn describe(t: &Traced, classes: &[String], top: usize, analysis: Option<&AnalysisReport>) -> String {
    let mut s = format!("predicted {} ({:.1}%); influence on class {}:\n", classes[t.predicted], 100.0 * t.probability, classes[t.class]);
    s += "  neuron  logit drop  p(c) drop  grad*act  response  real-image class   concept (IoU)\n";
    for inf in t.influences.iter().take(top) {
        let (real_class, concept) = analysis
            .and_then(|a| a.neurons.get(inf.channel))
            .map(|n| {
                let concept = n.concept.as_ref().map_or("-".to_string(), |(cat, name, iou)| format!("{cat}:{name} ({iou:.3})"));
                (classes[n.real_class].clone(), concept)
            })
            .unwrap_or(("-".into(), "-".into()));
        s += &format!(
            "  {:>6}  {:>+10.3}  {:>+9.4}  {:>8.3}  {:>8.3}  {real_class:<17}  {concept}\n",
            inf.channel, inf.logit_drop, inf.prob_drop, inf.grad_x_act, inf.activation
        );
    }
    s
}

/// The image (scaled) followed by the activation maps of the `top` most influential neurons.
pub fn png(t: &Traced, image: &Tensor, top: usize, out: &Path) -> Result<()> {
    let [_, c, h, w] = [image.shape()[0], image.shape()[1], image.shape()[2], image.shape()[3]];
    let (mc, mh, mw) = (t.maps.shape()[1], t.maps.shape()[2], t.maps.shape()[3]);
    let scale = (96 / h.max(1)).max(1) as u32;
    let cell = (h as u32 * scale, w as u32 * scale);
    let shown: Vec<&Influence> = t.influences.iter().take(top).collect();
    let mut img = image::RgbImage::from_pixel((cell.0 + 4) * (1 + shown.len() as u32), cell.1, image::Rgb([255, 255, 255]));
    let px = image.data();
    for y in 0..cell.1 {
        for x in 0..cell.0 {
            let (sy, sx) = ((y / scale) as usize, (x / scale) as usize);
            let rgb = std::array::from_fn(|ch| (255.0 * px[ch.min(c - 1) * h * w + sy * w + sx]).round() as u8);
            img.put_pixel(x, y, image::Rgb(rgb));
        }
    }
    let maps = t.maps.data();
    for (k, inf) in shown.iter().enumerate() {
        let plane = &maps[inf.channel * mh * mw..(inf.channel + 1) * mh * mw];
        let hi = plane.iter().cloned().fold(1e-12f32, f32::max);
        let x0 = (k as u32 + 1) * (cell.0 + 4);
        for y in 0..cell.1 {
            for x in 0..cell.0 {
                let (sy, sx) = (y as usize * mh / cell.1 as usize, x as usize * mw / cell.0 as usize);
                let v = (plane[sy * mw + sx].max(0.0) / hi).min(1.0);
                // Map to a dark-to-yellow heat scale over the greyed image.
                let g = px[(y / scale) as usize * w + (x / scale) as usize] * 0.3;
                let rgb = [(255.0 * (g + v * 0.9).min(1.0)) as u8, (255.0 * (g + v * v * 0.8).min(1.0)) as u8, (255.0 * g) as u8];
                img.put_pixel(x0 + x, y, image::Rgb(rgb));
            }
        }
        let _ = mc;
    }
    img.save(out).with_context(|| format!("writing {}", out.display()))
}
