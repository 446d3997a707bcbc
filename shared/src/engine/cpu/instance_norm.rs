//! Instance normalisation (ONNX `InstanceNormalization`, PyTorch's `InstanceNorm2d` with
//! `affine=True`), forward and input gradient. `x` is `[N, C, P]` with `P` pixels per channel
//! plane; every channel plane of every image is normalised over its `P` pixels on its own, then
//! scaled and shifted per channel. No running statistics: images are normalised alike in
//! training and inference.

/// `y[n,c,p] = (x[n,c,p] - m[n,c]) r[n,c] weight[c] + bias[c]` with
/// `m[n,c] = mean_p x[n,c,p]`, `v[n,c] = mean_p (x[n,c,p] - m[n,c])^2` and
/// `r[n,c] = 1 / sqrt(v[n,c] + eps)`.
pub fn instance_norm_forward(x: &[f32], weight: &[f32], bias: &[f32], plane: usize, eps: f32) -> Vec<f32> {
    let channels = weight.len();
    let mut y = vec![0.0; x.len()];
    for (k, (row, out)) in x.chunks_exact(plane).zip(y.chunks_exact_mut(plane)).enumerate() {
        let c = k % channels;
        let (mean, rstd) = moments(row, eps);
        let (scale, shift) = (rstd * weight[c], bias[c]);
        for (o, v) in out.iter_mut().zip(row) {
            *o = (v - mean) * scale + shift;
        }
    }
    y
}

/// Through [`instance_norm_forward`], with `h = (x - m) r`:
/// `d_x[n,c,p] = r[n,c] weight[c] (d_y[n,c,p] - mean_p d_y[n,c,p] - h[n,c,p] mean_p (d_y h)[n,c,p])`.
pub fn instance_norm_backward(x: &[f32], d_y: &[f32], weight: &[f32], plane: usize, eps: f32) -> Vec<f32> {
    let channels = weight.len();
    let mut d_x = vec![0.0; x.len()];
    let rows = x.chunks_exact(plane).zip(d_y.chunks_exact(plane)).zip(d_x.chunks_exact_mut(plane));
    for (k, ((row, d_row), d_in)) in rows.enumerate() {
        let c = k % channels;
        let (mean, rstd) = moments(row, eps);
        let (mut mean_g, mut mean_gh) = (0.0f32, 0.0f32);
        for (v, g) in row.iter().zip(d_row) {
            mean_g += g;
            mean_gh += g * (v - mean) * rstd;
        }
        let inv = 1.0 / plane as f32;
        (mean_g, mean_gh) = (mean_g * inv, mean_gh * inv);
        let scale = rstd * weight[c];
        for ((d, v), g) in d_in.iter_mut().zip(row).zip(d_row) {
            *d = scale * (g - mean_g - (v - mean) * rstd * mean_gh);
        }
    }
    d_x
}

/// The mean and `1 / sqrt(variance + eps)` of one channel plane (the variance from the centred
/// values: no cancellation).
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let inv = 1.0 / row.len() as f32;
    let mean = row.iter().sum::<f32>() * inv;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() * inv;
    (mean, 1.0 / (var + eps).sqrt())
}
