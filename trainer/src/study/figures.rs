//! The reproduction's figures: consis, CS1/CS2 against consis (the paper's Figure 8), the r
//! distribution (Figure 9) and concept detectors, from the neurons the means count.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::results::ModelResult;

fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let mut h = vec![0usize; bins];
    for &v in values {
        let b = (((v - lo) / (hi - lo)) * bins as f64).floor().clamp(0.0, (bins - 1) as f64) as usize;
        h[b] += 1;
    }
    let n = values.len().max(1) as f64;
    h.iter().enumerate().map(|(i, &c)| (lo + (i as f64 + 0.5) * (hi - lo) / bins as f64, c as f64 / n)).collect()
}

/// The figures of the dataset's models (the concept world only in `detectors.png`), from the
/// neurons the means count (silent ones left out).
pub fn figures(results: &[ModelResult], dataset: &str, out: &Path) -> Result<()> {
    let f = crate::plot::font_name();
    let firing = |m: &ModelResult| -> Vec<advlens_shared::analysis::atlas::NeuronStats> { m.analysis.neurons.iter().filter(|n| !n.silent).cloned().collect() };
    let modes = ["standard", "pgd", "consistent"];
    let colors = [BLUE, RED, GREEN];
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    // consis distributions.
    {
        let path = out.join("consis.png");
        let root = BitMapBackend::new(&path, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (title, adv)) in panels.iter().zip([("consis, real top images", false), ("consis, adversarial top images (source)", true)]) {
            let mut chart = ChartBuilder::on(panel).caption(title, (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(|e| err(&e))?;
            chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
            for (mode, color) in modes.iter().zip(colors) {
                let v: Vec<f64> = results.iter().filter(|m| m.mode == *mode && m.world == dataset).flat_map(|m| firing(m).into_iter().map(|n| if adv { n.consis_adv_source } else { n.consis_real })).collect();
                chart.draw_series(LineSeries::new(histogram(&v, 0.0, 1.0, 20), color.stroke_width(2))).map_err(|e| err(&e))?
                    .label(*mode).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
            }
            chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    // CS1 and CS2 against consis (real), per mode.
    {
        let path = out.join("cs.png");
        let root = BitMapBackend::new(&path, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (title, second)) in panels.iter().zip([("CS1 vs consis (real)", false), ("CS2 vs consis (real)", true)]) {
            let mut chart = ChartBuilder::on(panel).caption(title, (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(|e| err(&e))?;
            chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
            for (mode, color) in modes.iter().zip(colors) {
                let pts: Vec<(f64, f64)> = results
                    .iter()
                    .filter(|m| m.mode == *mode && m.world == dataset)
                    .flat_map(|m| firing(m).into_iter().filter_map(|n| Some((n.consis_real, if second { n.cs2? } else { n.cs1 }))))
                    .collect();
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 2, color.filled()))).map_err(|e| err(&e))?
                    .label(*mode).legend(move |(x, y)| Circle::new((x + 7, y), 3, color.filled()));
            }
            chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    // r distribution (log2 r), per mode.
    {
        let path = out.join("r.png");
        let root = BitMapBackend::new(&path, (600, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root).caption("log2 r of successful adversarial images", (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
            .build_cartesian_2d(-3.0..3.0, 0.0..0.5).map_err(|e| err(&e))?;
        chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
        for (mode, color) in modes.iter().zip(colors) {
            let v: Vec<f64> = results.iter().filter(|m| m.mode == *mode && m.world == dataset).flat_map(|m| m.analysis.r.iter().map(|r| r.log2())).collect();
            chart.draw_series(LineSeries::new(histogram(&v, -3.0, 3.0, 24), color.stroke_width(2))).map_err(|e| err(&e))?
                .label(*mode).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    // Concept detectors per category, real vs adversarial, per mode (concept world, when run).
    if results.iter().any(|m| m.world == "concepts") {
        let path = out.join("detectors.png");
        let root = BitMapBackend::new(&path, (960, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let categories = ["object", "part", "colour", "texture"];
        let count = |mode: &str, adv: bool, cat: &str| -> f64 {
            results
                .iter()
                .filter(|m| m.world == "concepts" && m.mode == mode)
                .map(|m| *if adv { &m.analysis.detectors_adv } else { &m.analysis.detectors_real }.get(cat).unwrap_or(&0) as f64)
                .sum()
        };
        let top = modes.iter().flat_map(|m| categories.iter().flat_map(move |c| [(m, c, false), (m, c, true)])).map(|(m, c, a)| count(m, a, c)).fold(1.0, f64::max);
        for (panel, mode) in root.split_evenly((1, 3)).iter().zip(modes) {
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{mode}: detectors (blue real, red adv.)"), (f, 14))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(32)
                .build_cartesian_2d(0.0..4.0, 0.0..top * 1.1)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_labels(5)
                .x_label_formatter(&|x: &f64| categories.get(x.floor() as usize).map_or(String::new(), |c| c.to_string()))
                .label_style((f, 11))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, cat) in categories.iter().enumerate() {
                let x = i as f64;
                chart
                    .draw_series([
                        Rectangle::new([(x + 0.15, 0.0), (x + 0.5, count(mode, false, cat))], BLUE.filled()),
                        Rectangle::new([(x + 0.5, 0.0), (x + 0.85, count(mode, true, cat))], RED.filled()),
                    ])
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(())
}
