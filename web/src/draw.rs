//! Pure pixel functions: images, heat maps, overlays and perturbations as RGBA bytes. No DOM
//! here, so everything is unit-tested natively; `dom::canvas` puts the bytes on the page.

use advlens_shared::analysis::metrics::upsample;

/// RGBA pixels of a CHW byte image (grey when it has one channel).
pub fn to_rgba(pixels: &[u8], [c, h, w]: [usize; 3]) -> Vec<u8> {
    let plane = h * w;
    (0..plane)
        .flat_map(|i| {
            let px = |ch: usize| pixels[(ch.min(c - 1)) * plane + i];
            [px(0), px(1), px(2), 255]
        })
        .collect()
}

/// Bytes of an image with values in [0, 1].
pub fn to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect()
}

/// The heat palette: black (0) through red and orange to pale yellow (1), monotonic in
/// brightness so that it reads in greyscale too.
pub fn heat(t: f32) -> [u8; 3] {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let r = (t * 2.0).min(1.0);
    let g = (t * 1.6 - 0.45).clamp(0.0, 1.0);
    let b = (t * 2.5 - 1.5).clamp(0.0, 1.0) * 0.8;
    [(255.0 * r).round() as u8, (255.0 * g).round() as u8, (255.0 * b).round() as u8]
}

/// A channel's `h x w` plane as RGBA heat, scaled by `max` (values <= 0 are black).
pub fn heat_rgba(plane: &[f32], max: f32) -> Vec<u8> {
    let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
    plane.iter().flat_map(|&v| {
        let [r, g, b] = heat(v.max(0.0) / max);
        [r, g, b, 255]
    }).collect()
}

/// The largest value of a plane (0 for an empty or all-negative one).
pub fn plane_max(plane: &[f32]) -> f32 {
    plane.iter().copied().filter(|v| v.is_finite()).fold(0.0, f32::max)
}

/// A neuron's activation map laid over its image: the map (`mh x mw`) is bilinearly upsampled
/// to the image (`[c, h, w]`, values in [0, 1]), and each pixel is the dimmed grey image plus
/// the heat of the map, so that where the neuron fires shows on what it sees.
pub fn overlay_rgba(image: &[f32], [c, h, w]: [usize; 3], map: &[f32], [mh, mw]: [usize; 2], max: f32) -> Vec<u8> {
    let up = upsample(map, mh, mw, h, w);
    let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
    (0..h * w)
        .flat_map(|i| {
            let grey = (0..c).map(|ch| image[ch * h * w + i]).sum::<f32>() / c as f32;
            let t = (up[i].max(0.0) / max).min(1.0);
            let [r, g, b] = heat(t);
            let mix = |heat: u8| (0.35 * 255.0 * grey * (1.0 - t) + (0.25 + 0.75 * t) * f32::from(heat) + 0.0).round().clamp(0.0, 255.0) as u8;
            [mix(r), mix(g), mix(b), 255]
        })
        .collect()
}

/// The perturbation `adversarial - clean` made visible: mid-grey is no change, white `+epsilon`,
/// black `-epsilon` (per channel).
pub fn perturbation_rgba(adversarial: &[f32], clean: &[f32], shape: [usize; 3], epsilon: f32) -> Vec<u8> {
    let epsilon = if epsilon > 0.0 { epsilon } else { 1.0 };
    let diff: Vec<f32> = adversarial.iter().zip(clean).map(|(a, b)| (0.5 + 0.5 * (a - b) / epsilon).clamp(0.0, 1.0)).collect();
    to_rgba(&to_bytes(&diff), shape)
}

/// The `k` most probable classes, most probable first.
pub fn top_classes(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

/// The largest absolute difference between two images.
pub fn linf(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_classes_are_sorted_and_truncated() {
        assert_eq!(top_classes(&[0.1, 0.6, 0.3], 2), vec![(1, 0.6), (2, 0.3)]);
        assert_eq!(top_classes(&[1.0], 3), vec![(0, 1.0)]);
    }

    #[test]
    fn grey_and_rgb_images_become_rgba() {
        assert_eq!(to_rgba(&[10, 20], [1, 1, 2]), vec![10, 10, 10, 255, 20, 20, 20, 255]);
        // CHW planes interleave into RGBA pixels.
        assert_eq!(to_rgba(&[1, 2, 3, 4, 5, 6], [3, 1, 2]), vec![1, 3, 5, 255, 2, 4, 6, 255]);
        assert_eq!(to_bytes(&[-1.0, 0.5, 2.0]), vec![0, 128, 255]);
    }

    #[test]
    fn the_heat_palette_runs_from_black_to_bright_and_never_gets_darker() {
        assert_eq!(heat(0.0), [0, 0, 0]);
        assert_eq!(heat(f32::NAN), [0, 0, 0]);
        let luma = |t: f32| {
            let [r, g, b] = heat(t);
            0.3 * f32::from(r) + 0.59 * f32::from(g) + 0.11 * f32::from(b)
        };
        let steps: Vec<f32> = (0..=100).map(|i| luma(i as f32 / 100.0)).collect();
        assert!(steps.windows(2).all(|w| w[1] >= w[0]), "{steps:?}");
        assert!(luma(1.0) > 200.0);
        assert_eq!(heat_rgba(&[-1.0, 2.0], 2.0), [[0, 0, 0, 255], { let [r, g, b] = heat(1.0); [r, g, b, 255] }].concat());
    }

    #[test]
    fn an_overlay_is_bright_where_the_map_fires_and_dim_elsewhere() {
        // A white 4x4 image; the 2x2 map fires only at its top-left cell.
        let image = vec![1.0; 16];
        let out = overlay_rgba(&image, [1, 4, 4], &[1.0, 0.0, 0.0, 0.0], [2, 2], 1.0);
        assert_eq!(out.len(), 64);
        let red = |i: usize| out[4 * i];
        assert!(red(0) > 200, "top-left fires: {}", red(0));
        assert!(red(15) < 100, "bottom-right is the dimmed image: {}", red(15));
        assert!(red(15) > 50, "but the image still shows: {}", red(15));
    }

    #[test]
    fn perturbations_map_the_budget_to_black_and_white() {
        let out = perturbation_rgba(&[0.6, 0.4, 0.5], &[0.5, 0.5, 0.5], [1, 1, 3], 0.1);
        assert_eq!([out[0], out[4], out[8]], [255, 0, 128]);
        assert!((linf(&[0.6, 0.4], &[0.5, 0.5]) - 0.1).abs() < 1e-6);
    }
}
