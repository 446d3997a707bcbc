//! `advlens trace`: the neurons behind one prediction, with the shared engine's tracing (the same
//! code the explorer runs), as text and as a PNG of the top neurons' activation maps — and, when
//! a neuron atlas is at hand, each neuron's top real and adversarial patches.

use std::path::Path;

use advlens_shared::analysis::trace::{trace, Influence};
use advlens_shared::engine::Engine;
use advlens_shared::tensor::{argmax, softmax};
use advlens_shared::Tensor;
use anyhow::{Context, Result};

use advlens_shared::analysis::atlas::AtlasMeta;

use crate::analysis::AnalysisReport;

/// A neuron atlas as `advlens analyze --atlas` writes it: `atlas.json` and its two sheets.
pub struct AtlasSheets {
    pub meta: AtlasMeta,
    pub real: image::RgbImage,
    pub adversarial: image::RgbImage,
}

impl AtlasSheets {
    /// Loads `dir/atlas.json` and its two sprite sheets (`real.png` / `adversarial.png`, or `.jpg`) and checks that the
    /// sheets have the size the JSON implies.
    pub fn load(dir: &Path, classes: usize) -> Result<AtlasSheets> {
        let json = dir.join("atlas.json");
        let bytes = std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?;
        let meta = AtlasMeta::from_json(&bytes, Some(classes)).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let sheet = |name: &str| -> Result<image::RgbImage> {
            let path = dir.join(name);
            let img = crate::data::folder::open_image(&path)?.to_rgb8();
            let (w, h) = meta.sheet_size();
            if (img.width() as usize, img.height() as usize) != (w, h) {
                anyhow::bail!("{} is {}x{} but atlas.json describes a {w}x{h} sheet: rerun `advlens analyze --atlas`", path.display(), img.width(), img.height());
            }
            Ok(img)
        };
        let format = meta.sheets;
        Ok(AtlasSheets { real: sheet(&format.file("real"))?, adversarial: sheet(&format.file("adversarial"))?, meta })
    }
}

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

/// The traced prediction as JSON: `{predicted, probability, class, layer, influences: [{channel,
/// activation, grad_x_act, logit_drop, prob_drop}]}`, influences sorted as `trace` sorts them.
pub fn to_json(t: &Traced, layer: &str) -> serde_json::Value {
    let influences: Vec<serde_json::Value> = t
        .influences
        .iter()
        .map(|i| serde_json::json!({ "channel": i.channel, "activation": i.activation, "grad_x_act": i.grad_x_act, "logit_drop": i.logit_drop, "prob_drop": i.prob_drop }))
        .collect();
    serde_json::json!({ "predicted": t.predicted, "probability": t.probability, "class": t.class, "layer": layer, "influences": influences })
}

/// Text lines: one per top neuron, with what `analysis` (if given) says about it.
pub fn describe(t: &Traced, classes: &[String], top: usize, analysis: Option<&AnalysisReport>, atlas: Option<&AtlasMeta>) -> String {
    let mut s = format!("predicted {} ({:.1}%); influence on class {}:\n", classes[t.predicted], 100.0 * t.probability, classes[t.class]);
    s += "  neuron  logit drop  p(c) drop  grad*act  response  real-image class   concept (IoU)\n";
    for inf in t.influences.iter().take(top) {
        // The analysis's statistics, else the same ones as the atlas carries them.
        let stats = analysis
            .and_then(|a| a.neurons.get(inf.channel))
            .or_else(|| atlas.and_then(|m| m.row_of(inf.channel).map(|r| &m.neurons[r].stats)));
        let (real_class, concept) = stats
            .map(|n| {
                let concept = n.concept.as_ref().map_or("-".to_string(), |(cat, name, iou)| format!("{cat}:{name} ({iou:.3})"));
                // A silent neuron's top images are ties: its majority class means nothing.
                (if n.silent { "(silent)".to_string() } else { classes[n.real_class].clone() }, concept)
            })
            .unwrap_or(("-".into(), "-".into()));
        s += &format!(
            "  {:>6}  {:>+10.3}  {:>+9.4}  {:>8.3}  {:>8.3}  {real_class:<17}  {concept}\n",
            inf.channel, inf.logit_drop, inf.prob_drop, inf.grad_x_act, inf.activation
        );
        if let Some((meta, row)) = atlas.and_then(|m| m.row_of(inf.channel).map(|r| (m, r))) {
            let name = |c: usize| classes.get(c).map_or("?".to_string(), |n| n.clone());
            let n = &meta.neurons[row];
            let real: Vec<String> = n.real.iter().map(|e| name(e.label)).collect();
            let adv: Vec<String> = n.adversarial.iter().map(|e| e.target.map_or(name(e.label), |t| format!("{}->{}", name(e.label), name(t)))).collect();
            s += &format!("          top real images: {}\n", real.join(" "));
            s += &format!("          top adversarial images (seen -> made to look like): {}\n", adv.join(" "));
        }
    }
    s
}

/// Patches shown per neuron and kind (a 3 x 3 grid).
const GRID: usize = 3;

/// The image (scaled) followed by the activation maps of the `top` most influential neurons;
/// with an atlas, under each map its top real patches (3 x 3) and, under a red bar, its top
/// adversarial patches.
pub fn png(t: &Traced, image: &Tensor, top: usize, atlas: Option<&AtlasSheets>, out: &Path) -> Result<()> {
    let [_, c, h, w] = [image.shape()[0], image.shape()[1], image.shape()[2], image.shape()[3]];
    let (mh, mw) = (t.maps.shape()[2], t.maps.shape()[3]);
    let scale = (96 / h.max(1)).max(1) as u32;
    let cell = (w as u32 * scale, h as u32 * scale);
    let shown: Vec<&Influence> = t.influences.iter().take(top).collect();
    // Room for two patch grids and the bar between them.
    let (patch_cell, bar) = (cell.0 / GRID as u32, 6u32);
    let extra = if atlas.is_some() { 2 * patch_cell * GRID as u32 + 2 * bar } else { 0 };
    let mut img = image::RgbImage::from_pixel((cell.0 + 4) * (1 + shown.len() as u32), cell.1 + extra, image::Rgb([255, 255, 255]));
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
        let Some((sheets, row)) = atlas.and_then(|a| a.meta.row_of(inf.channel).map(|r| (a, r))) else { continue };
        let mut y0 = cell.1 + bar;
        for (which, sheet) in [&sheets.real, &sheets.adversarial].into_iter().enumerate() {
            if which == 1 {
                for y in y0 - bar + 1..y0 - 1 {
                    for x in 0..cell.0 {
                        img.put_pixel(x0 + x, y, image::Rgb([200, 30, 30]));
                    }
                }
            }
            let side = patch_cell - 2;
            for j in 0..(GRID * GRID).min(sheets.meta.top_k) {
                let (sx0, sy0) = sheets.meta.cell_origin(row, j);
                let (gx, gy) = (x0 + (j % GRID) as u32 * patch_cell, y0 + (j / GRID) as u32 * patch_cell);
                for y in 0..side {
                    for x in 0..side {
                        let p = sheets.meta.patch as u32;
                        let (px_, py_) = (sx0 as u32 + x * p / side, sy0 as u32 + y * p / side);
                        img.put_pixel(gx + x, gy + y, *sheet.get_pixel(px_, py_));
                    }
                }
            }
            y0 += patch_cell * GRID as u32 + bar;
        }
    }
    img.save(out).with_context(|| format!("writing {}", out.display()))
}
