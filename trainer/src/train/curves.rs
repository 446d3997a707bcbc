//! `curves.png` of a run: loss and accuracies per epoch.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::EpochMetrics;
use crate::plot::font_name;

/// Loss (left) and accuracies (right) per epoch.
pub fn training_curves(history: &[EpochMetrics], path: &Path) -> Result<()> {
    let f = font_name();
    let root = BitMapBackend::new(path, (960, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(480);
    let last = history.iter().map(|m| m.epoch).max().unwrap_or(1).max(2) as f64;

    let max_loss = history.iter().map(|m| m.train_loss).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss", (f, 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..last, 0.0..max_loss)
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("epoch").label_style((f, 12)).axis_desc_style((f, 13)).draw().map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(LineSeries::new(history.iter().map(|m| (m.epoch as f64, m.train_loss)), BLUE.stroke_width(2)))
        .map_err(|e| anyhow!("{e}"))?;

    let lo = history
        .iter()
        .flat_map(|m| [Some(m.train_accuracy), m.val_accuracy, Some(m.test_accuracy)])
        .flatten()
        .fold(1.0f64, f64::min);
    let lo = (lo * 100.0 - 2.0).clamp(0.0, 98.0);
    let mut chart = ChartBuilder::on(&right)
        .caption("accuracy (%)", (f, 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..last, lo..100.0)
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("epoch").label_style((f, 12)).axis_desc_style((f, 13)).draw().map_err(|e| anyhow!("{e}"))?;
    let series: [(&str, RGBColor, Box<dyn Fn(&EpochMetrics) -> Option<f64>>); 3] = [
        ("train", BLUE, Box::new(|m| Some(m.train_accuracy))),
        ("validation", GREEN, Box::new(|m| m.val_accuracy)),
        ("test", RED, Box::new(|m| Some(m.test_accuracy))),
    ];
    for (name, color, get) in series {
        let points: Vec<(f64, f64)> = history.iter().filter_map(|m| get(m).map(|a| (m.epoch as f64, 100.0 * a))).collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font((f, 12))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
