//! The CPU reference of every layer: plain loops that state the math.
//!
//! All images are NCHW. These functions trust their shapes; [`crate::Bundle`]
//! validation guarantees them before any of them runs.

/// `y[n,c,i] = (x[n,c,i] - mean[c]) / std[c]`.
pub fn normalize_forward(x: &[f32], batch: usize, mean: &[f32], std: &[f32], plane: usize) -> Vec<f32> {
    let channels = mean.len();
    let mut y = Vec::with_capacity(x.len());
    for n in 0..batch {
        for c in 0..channels {
            let base = (n * channels + c) * plane;
            y.extend(x[base..base + plane].iter().map(|v| (v - mean[c]) / std[c]));
        }
    }
    y
}

/// Shape of a convolution or pooling window over an NCHW tensor.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_height: usize,
    pub out_width: usize,
}

/// `y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * x[n,c, i*s+u-p, j*s+v-p]` (zero padding).
pub fn conv2d_forward(x: &[f32], w: &[f32], b: &[f32], g: Window, out_channels: usize) -> Vec<f32> {
    let (k, oh, ow) = (g.kernel, g.out_height, g.out_width);
    let mut y = vec![0.0; g.batch * out_channels * oh * ow];
    for n in 0..g.batch {
        for o in 0..out_channels {
            let out = &mut y[(n * out_channels + o) * oh * ow..][..oh * ow];
            out.fill(b[o]);
            for c in 0..g.in_channels {
                let plane = &x[(n * g.in_channels + c) * g.height * g.width..][..g.height * g.width];
                let kernel = &w[(o * g.in_channels + c) * k * k..][..k * k];
                for u in 0..k {
                    for v in 0..k {
                        let wv = kernel[u * k + v];
                        for i in 0..oh {
                            let Some(row) = (i * g.stride + u).checked_sub(g.padding).filter(|&r| r < g.height) else {
                                continue;
                            };
                            for j in 0..ow {
                                if let Some(col) = (j * g.stride + v).checked_sub(g.padding).filter(|&c| c < g.width) {
                                    out[i * ow + j] += wv * plane[row * g.width + col];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// `y = max(x, 0)`.
pub fn relu_forward(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

/// `y[n,c,i,j] = max_{u,v} x[n,c, i*s+u-p, j*s+v-p]`, padding never wins.
pub fn max_pool2d_forward(x: &[f32], g: Window) -> Vec<f32> {
    let (k, oh, ow) = (g.kernel, g.out_height, g.out_width);
    let mut y = vec![f32::NEG_INFINITY; g.batch * g.in_channels * oh * ow];
    for nc in 0..g.batch * g.in_channels {
        let plane = &x[nc * g.height * g.width..][..g.height * g.width];
        let out = &mut y[nc * oh * ow..][..oh * ow];
        for i in 0..oh {
            for j in 0..ow {
                for u in 0..k {
                    let Some(row) = (i * g.stride + u).checked_sub(g.padding).filter(|&r| r < g.height) else {
                        continue;
                    };
                    for v in 0..k {
                        if let Some(col) = (j * g.stride + v).checked_sub(g.padding).filter(|&c| c < g.width) {
                            out[i * ow + j] = out[i * ow + j].max(plane[row * g.width + col]);
                        }
                    }
                }
            }
        }
    }
    y
}

/// `y[n,o] = b[o] + sum_i w[o,i] * x[n,i]`.
pub fn linear_forward(x: &[f32], w: &[f32], b: &[f32], batch: usize, in_features: usize, out_features: usize) -> Vec<f32> {
    let mut y = vec![0.0; batch * out_features];
    for n in 0..batch {
        let xs = &x[n * in_features..][..in_features];
        for o in 0..out_features {
            let ws = &w[o * in_features..][..in_features];
            y[n * out_features + o] = b[o] + xs.iter().zip(ws).map(|(a, b)| a * b).sum::<f32>();
        }
    }
    y
}

/// `y[n,c,i,j] = mean_{u,v} x[n,c, i*s+u-p, j*s+v-p]`; zero padding counts in the divisor `k*k`.
pub fn avg_pool2d_forward(x: &[f32], g: Window) -> Vec<f32> {
    let (k, oh, ow) = (g.kernel, g.out_height, g.out_width);
    let scale = 1.0 / (k * k) as f32;
    let mut y = vec![0.0; g.batch * g.in_channels * oh * ow];
    for nc in 0..g.batch * g.in_channels {
        let plane = &x[nc * g.height * g.width..][..g.height * g.width];
        for i in 0..oh {
            for j in 0..ow {
                let mut sum = 0.0;
                for u in 0..k {
                    let Some(row) = (i * g.stride + u).checked_sub(g.padding).filter(|&r| r < g.height) else {
                        continue;
                    };
                    for v in 0..k {
                        if let Some(col) = (j * g.stride + v).checked_sub(g.padding).filter(|&c| c < g.width) {
                            sum += plane[row * g.width + col];
                        }
                    }
                }
                y[(nc * oh + i) * ow + j] = sum * scale;
            }
        }
    }
    y
}

/// `y[n,c] = mean_{h,w} x[n,c,h,w]` over `planes = N*C` planes of `plane` values.
pub fn global_avg_pool_forward(x: &[f32], planes: usize, plane: usize) -> Vec<f32> {
    (0..planes).map(|p| x[p * plane..][..plane].iter().sum::<f32>() / plane as f32).collect()
}

/// Inference batch norm folded to `y = x * scale[c] + shift[c]`, with
/// `scale = weight / sqrt(running_var + eps)` and `shift = bias - running_mean * scale`.
pub fn batch_norm_forward(x: &[f32], scale: &[f32], shift: &[f32], batch: usize, plane: usize) -> Vec<f32> {
    let channels = scale.len();
    (0..batch * channels)
        .flat_map(|nc| {
            let c = nc % channels;
            x[nc * plane..][..plane].iter().map(move |v| v * scale[c] + shift[c])
        })
        .collect()
}

/// The folded `(scale, shift)` of an inference batch norm.
pub fn batch_norm_fold(weight: &[f32], bias: &[f32], mean: &[f32], var: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = weight.iter().zip(var).map(|(w, v)| w / (v + eps).sqrt()).collect();
    let shift = bias.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (scale, shift)
}

/// `y = a + b`.
pub fn add_forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}
