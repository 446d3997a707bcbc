//! Layer normalisation over the channels of each pixel (ConvNeXt's `LayerNorm2d`), forward and
//! input gradient. `x` is `[N, C, P]` with `P` pixels per channel plane (`P = 1` for a feature
//! vector); every pixel of every image is normalised over its `C` values on its own.

/// `y[n,c,p] = (x[n,c,p] - m[n,p]) r[n,p] weight[c] + bias[c]` with
/// `m[n,p] = mean_c x[n,c,p]`, `v[n,p] = mean_c (x[n,c,p] - m[n,p])^2` and
/// `r[n,p] = 1 / sqrt(v[n,p] + eps)`.
pub fn channel_norm_forward(x: &[f32], weight: &[f32], bias: &[f32], batch: usize, plane: usize, eps: f32) -> Vec<f32> {
    let channels = weight.len();
    let mut y = vec![0.0; x.len()];
    for n in 0..batch {
        let image = &x[n * channels * plane..][..channels * plane];
        let out = &mut y[n * channels * plane..][..channels * plane];
        let (mean, rstd) = moments(image, channels, plane, eps);
        for c in 0..channels {
            let (row, out) = (&image[c * plane..][..plane], &mut out[c * plane..][..plane]);
            for p in 0..plane {
                out[p] = (row[p] - mean[p]) * rstd[p] * weight[c] + bias[c];
            }
        }
    }
    y
}

/// Through [`channel_norm_forward`], with `h = (x - m) r` and `g = d_y weight[c]`:
/// `d_x[n,c,p] = r[n,p] (g[n,c,p] - mean_c g[n,c,p] - h[n,c,p] mean_c (g h)[n,c,p])`.
pub fn channel_norm_backward(x: &[f32], d_y: &[f32], weight: &[f32], batch: usize, plane: usize, eps: f32) -> Vec<f32> {
    let channels = weight.len();
    let mut d_x = vec![0.0; x.len()];
    for n in 0..batch {
        let image = &x[n * channels * plane..][..channels * plane];
        let d_out = &d_y[n * channels * plane..][..channels * plane];
        let (mean, rstd) = moments(image, channels, plane, eps);
        // mean_c g and mean_c g h, per pixel.
        let (mut mean_g, mut mean_gh) = (vec![0.0f32; plane], vec![0.0f32; plane]);
        for c in 0..channels {
            let (row, d_row) = (&image[c * plane..][..plane], &d_out[c * plane..][..plane]);
            for p in 0..plane {
                let g = d_row[p] * weight[c];
                mean_g[p] += g;
                mean_gh[p] += g * (row[p] - mean[p]) * rstd[p];
            }
        }
        let inv = 1.0 / channels as f32;
        mean_g.iter_mut().chain(mean_gh.iter_mut()).for_each(|v| *v *= inv);
        let d_in = &mut d_x[n * channels * plane..][..channels * plane];
        for c in 0..channels {
            let (row, d_row, d_in) = (&image[c * plane..][..plane], &d_out[c * plane..][..plane], &mut d_in[c * plane..][..plane]);
            for p in 0..plane {
                let h = (row[p] - mean[p]) * rstd[p];
                d_in[p] = rstd[p] * (d_row[p] * weight[c] - mean_g[p] - h * mean_gh[p]);
            }
        }
    }
    d_x
}

/// The mean and `1 / sqrt(variance + eps)` over the channels of every pixel of one image
/// `[C, P]` (the variance from the centred values: no cancellation).
fn moments(image: &[f32], channels: usize, plane: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let inv = 1.0 / channels as f32;
    let mut mean = vec![0.0f32; plane];
    for row in image.chunks_exact(plane) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m *= inv);
    let mut var = vec![0.0f32; plane];
    for row in image.chunks_exact(plane) {
        var.iter_mut().zip(row).zip(&mean).for_each(|((s, v), m)| *s += (v - m) * (v - m));
    }
    let rstd = var.iter().map(|s| 1.0 / (s * inv + eps).sqrt()).collect();
    (mean, rstd)
}
