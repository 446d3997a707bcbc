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

/// Where channel `k`'s map sits in a layer's grid image: `cols` maps of `h x w` a row, `gap`
/// pixels apart (and around). Returns the top-left pixel.
pub fn grid_cell(k: usize, cols: usize, [h, w]: [usize; 2], gap: usize) -> (usize, usize) {
    let (row, col) = (k / cols.max(1), k % cols.max(1));
    (gap + col * (w + gap), gap + row * (h + gap))
}

/// Every channel of a layer (`data` is `[c, h, w]`) as one RGBA grid image of `cols` columns:
/// heat maps scaled by the layer's `max`, on a white background. One image per layer is one
/// canvas on the page instead of one per channel (hundreds of canvases took the main thread
/// over 50 ms to lay out and commit). Returns the pixels, the width and the height.
pub fn channel_grid(data: &[f32], [c, h, w]: [usize; 3], max: f32, cols: usize, gap: usize) -> (Vec<u8>, usize, usize) {
    let cols = cols.clamp(1, c.max(1));
    let rows = c.div_ceil(cols);
    let (gw, gh) = (gap + cols * (w + gap), gap + rows * (h + gap));
    let mut out = vec![255u8; gw * gh * 4];
    for k in 0..c {
        let heat = heat_rgba(&data[k * h * w..(k + 1) * h * w], max);
        let (x0, y0) = grid_cell(k, cols, [h, w], gap);
        for y in 0..h {
            let at = ((y0 + y) * gw + x0) * 4;
            out[at..at + w * 4].copy_from_slice(&heat[y * w * 4..(y + 1) * w * 4]);
        }
    }
    (out, gw, gh)
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

/// The Euclidean distance between two images.
pub fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
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
    fn a_layer_grid_holds_each_channel_at_its_cell() {
        // Three 1x2 channels in two columns, one pixel apart: a 7x5 image, white around.
        let data = [0.0, 1.0, 1.0, 0.0, 0.5, 0.5];
        let (rgba, w, h) = channel_grid(&data, [3, 1, 2], 1.0, 2, 1);
        assert_eq!((w, h), (1 + 2 * 3, 1 + 2 * 2));
        let px = |x: usize, y: usize| [rgba[(y * w + x) * 4], rgba[(y * w + x) * 4 + 1], rgba[(y * w + x) * 4 + 2]];
        for k in 0..3 {
            let (x0, y0) = grid_cell(k, 2, [1, 2], 1);
            for i in 0..2 {
                assert_eq!(px(x0 + i, y0), heat(data[2 * k + i]), "channel {k} pixel {i}");
            }
        }
        assert_eq!(grid_cell(2, 2, [1, 2], 1), (1, 3), "the third channel starts the second row");
        assert_eq!(px(0, 0), [255, 255, 255], "the gap is white");
        assert_eq!(px(4, 3), [255, 255, 255], "the empty cell is white");
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
        assert!((l2(&[0.3, 0.4], &[0.0, 0.0]) - 0.5).abs() < 1e-6);
    }
}

/// CHW bytes for a model with `channels` channels from RGBA pixels (grey: the mean of R, G and
/// B). For a one-channel model, an image that is mostly light is inverted, since MNIST-style
/// data draws light strokes on black; the flag says whether that happened.
pub fn rgba_to_chw(rgba: &[u8], channels: usize) -> (Vec<u8>, bool) {
    let n = rgba.len() / 4;
    if channels != 1 {
        return ((0..channels.min(3)).flat_map(|c| (0..n).map(move |i| rgba[4 * i + c])).collect(), false);
    }
    let grey: Vec<u8> = (0..n).map(|i| ((u16::from(rgba[4 * i]) + u16::from(rgba[4 * i + 1]) + u16::from(rgba[4 * i + 2])) / 3) as u8).collect();
    let mean = grey.iter().map(|&g| f64::from(g)).sum::<f64>() / n.max(1) as f64;
    if mean > 127.0 {
        (grey.iter().map(|g| 255 - g).collect(), true)
    } else {
        (grey, false)
    }
}

/// Width and height from the header of a PNG, GIF or JPEG file, read before decoding so that
/// an enormous image can be refused without the browser allocating it. `None` for other formats.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let be32 = |i: usize| bytes.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let be16 = |i: usize| bytes.get(i..i + 2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])));
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR") {
        return Some((be32(16)?, be32(20)?));
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        let le16 = |i: usize| bytes.get(i..i + 2).map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])));
        return Some((le16(6)?, le16(8)?));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // Walk the segments to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC).
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            if marker == 0xFF {
                i += 1;
                continue;
            }
            let len = be16(i + 2)? as usize;
            if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + len;
        }
    }
    None
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn uploads_become_model_pixels_and_light_images_are_inverted_for_grey_models() {
        // Two pixels: black and white, RGBA.
        let rgba = [0, 0, 0, 255, 255, 255, 255, 255];
        assert_eq!(rgba_to_chw(&rgba, 3), (vec![0, 255, 0, 255, 0, 255], false));
        assert_eq!(rgba_to_chw(&[0, 0, 0, 255, 100, 100, 100, 255], 1), (vec![0, 100], false), "mostly dark: kept");
        let light = [250, 250, 250, 255, 200, 200, 200, 255];
        assert_eq!(rgba_to_chw(&light, 1), (vec![5, 55], true));
    }

    #[test]
    fn image_sizes_come_from_the_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend(20000u32.to_be_bytes());
        png.extend(300u32.to_be_bytes());
        assert_eq!(image_size(&png), Some((20000, 300)));
        assert_eq!(image_size(b"GIF89a\x10\x00\x20\x00rest"), Some((16, 32)));
        // SOI, an APP0 segment of length 4, then SOF0 with height 0x0102 and width 0x0304.
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0x02, 0x03, 0x04, 0x03, 0, 0];
        assert_eq!(image_size(&jpeg), Some((0x0304, 0x0102)));
        assert_eq!(image_size(b"not an image at all"), None);
        assert_eq!(image_size(&png[..18]), None, "truncated");
    }
}
