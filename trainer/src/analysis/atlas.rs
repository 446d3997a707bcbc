//! The neuron atlas: for every neuron of the analysed layer, the image patches (its receptive
//! field around its peak) of its top real and top adversarial images, as sprite sheets.

use anyhow::Result;
use tch::Device;

use super::pass::{top_k, LayerPass};
use super::{AnalyzeInput, AtlasEntry, AtlasMeta, AtlasNeuron, NeuronStats, SheetFormat};

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

pub(super) fn build_atlas(input: &AnalyzeInput, real: &LayerPass, adv: &LayerPass, neurons: &[NeuronStats]) -> Result<Atlas> {
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

