//! The CPU reference of every layer: plain loops that state the math.
//!
//! All images are NCHW. These functions trust their shapes; [`crate::Bundle`]
//! validation guarantees them before any of them runs.

use std::ops::Range;

use super::gemm::{copy_short, gemm, gemm_packed, Mat, PackedA};
use super::scratch;

/// `y[n,c,i] = (x[n,c,i] - mean[c]) / std[c]`.
pub fn normalize_forward(x: &[f32], batch: usize, mean: &[f32], std: &[f32], plane: usize) -> Vec<f32> {
    let channels = mean.len();
    let mut y = scratch::with_capacity(x.len());
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
    /// Distance between taps (1 for pooling and plain convolutions).
    pub dilation: usize,
    pub out_height: usize,
    pub out_width: usize,
}

/// `y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * x[n,c, i*s+u*d-p, j*s+v*d-p]` (zero padding,
/// dilation `d`).
///
/// Per image and group the input is unrolled into columns (`im2col`: one row per tap `(c,u,v)`,
/// one column per output pixel) and the output is the matrix product `W cols` ([`gemm`]) added
/// to the bias. A 1x1 convolution with stride 1 and no padding reads the image itself as `cols`.
///
/// With `groups` > 1, output channel `o` reads only the input channels of its group
/// (`c` runs over the `Cin / groups` channels from `(o / (Cout / groups)) * Cin / groups`).
pub fn conv2d_forward(x: &[f32], w: &[f32], b: &[f32], g: Window, out_channels: usize, groups: usize) -> Vec<f32> {
    let weights = pack_conv_weights(w, out_channels, g.in_channels / groups * g.kernel * g.kernel, groups, false);
    conv2d_forward_packed(x, &weights, b, g, out_channels, groups)
}

/// A convolution's weights `[Cout, Cin/groups, k, k]` as the matrix products read them, one
/// [`PackedA`] per group: `W` (`Cout/groups x taps`) for the forward, or `W^T` for the input
/// gradient when `transposed`. A model's weights do not change, so the engine packs them once.
pub fn pack_conv_weights(w: &[f32], out_channels: usize, taps: usize, groups: usize, transposed: bool) -> Vec<PackedA> {
    let per_group_out = out_channels / groups;
    (0..groups)
        .map(|grp| {
            let w = &w[grp * per_group_out * taps..][..per_group_out * taps];
            if transposed {
                PackedA::new(Mat::transposed(w, taps), taps, per_group_out)
            } else {
                PackedA::new(Mat::rows(w, taps), per_group_out, taps)
            }
        })
        .collect()
}

/// [`conv2d_forward`] with the weights packed by [`pack_conv_weights`] (not transposed).
pub fn conv2d_forward_packed(x: &[f32], weights: &[PackedA], b: &[f32], g: Window, out_channels: usize, groups: usize) -> Vec<f32> {
    let pixels = g.out_height * g.out_width;
    // One group at a time: a window over its input channels only.
    let group = Window { in_channels: g.in_channels / groups, ..g };
    let (plane, per_group_out) = (g.height * g.width, out_channels / groups);
    let taps = group.in_channels * g.kernel * g.kernel;
    assert!(
        weights.len() == groups && weights.iter().all(|w| (w.rows(), w.cols()) == (per_group_out, taps)),
        "the packed weights do not fit this convolution"
    );
    let mut y = scratch::zeroed(g.batch * out_channels * pixels);
    let mut cols = if g.is_pointwise() { Vec::new() } else { scratch::zeroed(taps * pixels) };
    for (grp, weights) in weights.iter().enumerate() {
        for n in 0..g.batch {
            let first = (n * g.in_channels + grp * group.in_channels) * plane;
            let image = &x[first..][..group.in_channels * plane];
            let cols: &[f32] = if g.is_pointwise() {
                image
            } else {
                im2col(image, group, &mut cols);
                &cols
            };
            let first_out = n * out_channels + grp * per_group_out;
            let out = &mut y[first_out * pixels..][..per_group_out * pixels];
            for (o, plane) in out.chunks_exact_mut(pixels).enumerate() {
                plane.fill(b[grp * per_group_out + o]);
            }
            gemm_packed(weights, pixels, Mat::rows(cols, pixels), out, pixels);
        }
    }
    scratch::recycle(cols);
    y
}

/// A transposed convolution, `y[n,o, i*s+u*d-p, j*s+v*d-p] += w[c,o,u,v] x[n,c,i,j]`, plus
/// `b[o]`: exactly the input gradient of the convolution that `g` describes with its input and
/// output swapped (`g.height x g.width` is this layer's output, `g.out_height x g.out_width` its
/// input), so it is computed by [`super::backward::conv2d_backward`]. `in_channels` is the
/// layer's input channels (the weight's first axis).
pub fn conv_transpose2d_forward(x: &[f32], w: &[f32], b: &[f32], g: Window, in_channels: usize, groups: usize) -> Vec<f32> {
    let mut y = super::backward::conv2d_backward(x, w, g, in_channels, groups);
    add_channel_bias(&mut y, b, g.height * g.width);
    y
}

/// `y[n,c,i] += b[c]` over planes of `plane` values.
pub fn add_channel_bias(y: &mut [f32], b: &[f32], plane: usize) {
    for (k, out) in y.chunks_mut(plane).enumerate() {
        let bias = b[k % b.len()];
        out.iter_mut().for_each(|v| *v += bias);
    }
}

/// `y += a * x`.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Unrolls one image `[C,H,W]` into `cols[(c*k + u)*k + v][i*ow + j] = x[c, i*s+u*d-p, j*s+v*d-p]`
/// (zero outside the image).
pub fn im2col(x: &[f32], g: Window, cols: &mut [f32]) {
    let (k, d, oh, ow) = (g.kernel, g.dilation, g.out_height, g.out_width);
    if g.padding > 0 {
        // Taps that read padding are never written below. Without padding every tap is inside.
        cols.fill(0.0);
    }
    for c in 0..g.in_channels {
        let plane = &x[c * g.height * g.width..][..g.height * g.width];
        for u in 0..k {
            let rows = g.valid_outputs(u * d, g.height, oh);
            for v in 0..k {
                let valid = g.valid_outputs(v * d, g.width, ow);
                if valid.is_empty() {
                    // The tap reads only padding (a kernel wider than its input).
                    continue;
                }
                let col = &mut cols[((c * k + u) * k + v) * oh * ow..][..oh * ow];
                if g.stride == 1 && ow == g.width {
                    shifted_copy(plane, col, ow, rows.clone(), valid, (u * d) as isize - g.padding as isize, (v * d) as isize - g.padding as isize);
                    continue;
                }
                for i in rows.clone() {
                    let first = (i * g.stride + u * d - g.padding) * g.width + valid.start * g.stride + v * d - g.padding;
                    let out = &mut col[i * ow..][valid.clone()];
                    if g.stride == 1 {
                        copy_short(out, &plane[first..][..out.len()]);
                    } else {
                        for (j, out) in out.iter_mut().enumerate() {
                            *out = plane[first + j * g.stride];
                        }
                    }
                }
            }
        }
    }
}

/// One tap of [`im2col`] when the output is as wide as the input (stride 1, "same" padding):
/// `col[i*W + j] = plane[(i + dy)*W + j + dx]` is then one shifted copy of the plane for the
/// valid output rows, after which the columns whose source wrapped into a neighbouring row are
/// zeroed again. One copy per tap instead of one per output row: rows of an MNIST-size image are
/// 14-28 floats, too short for a copy each.
fn shifted_copy(plane: &[f32], col: &mut [f32], width: usize, rows: Range<usize>, valid: Range<usize>, dy: isize, dx: isize) {
    let shift = dy * width as isize + dx;
    // Output indices of the valid rows whose source lies inside the plane (the ones outside
    // are all in invalid columns, zeroed below).
    let lo = ((rows.start * width) as isize).max(-shift);
    let hi = ((rows.end * width) as isize).min(plane.len() as isize - shift);
    if lo < hi {
        let (lo, hi) = (lo as usize, hi as usize);
        let from = (lo as isize + shift) as usize;
        col[lo..hi].copy_from_slice(&plane[from..][..hi - lo]);
    }
    for i in rows {
        let row = &mut col[i * width..][..width];
        row[..valid.start].fill(0.0);
        row[valid.end..].fill(0.0);
    }
}

/// The inverse scatter of [`im2col`]: adds every column entry back onto its input pixel.
pub fn col2im(cols: &[f32], g: Window, x: &mut [f32]) {
    let (k, d, oh, ow) = (g.kernel, g.dilation, g.out_height, g.out_width);
    for c in 0..g.in_channels {
        let plane = &mut x[c * g.height * g.width..][..g.height * g.width];
        for u in 0..k {
            let rows = g.valid_outputs(u * d, g.height, oh);
            for v in 0..k {
                let valid = g.valid_outputs(v * d, g.width, ow);
                if valid.is_empty() {
                    continue;
                }
                let col = &cols[((c * k + u) * k + v) * oh * ow..][..oh * ow];
                for i in rows.clone() {
                    let first = (i * g.stride + u * d - g.padding) * g.width + valid.start * g.stride + v * d - g.padding;
                    for (j, value) in col[i * ow..][valid.clone()].iter().enumerate() {
                        plane[first + j * g.stride] += value;
                    }
                }
            }
        }
    }
}

impl Window {
    /// A 1x1 window with stride 1 and no padding: `im2col` would copy the image unchanged.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// The output indices `i` whose tap at offset `u` (the tap index times the dilation) reads
    /// inside the input: `0 <= i*s + u - p < size`.
    pub fn valid_outputs(&self, u: usize, size: usize, out: usize) -> std::ops::Range<usize> {
        let lo = self.padding.saturating_sub(u).div_ceil(self.stride);
        let hi = (size + self.padding).saturating_sub(u).div_ceil(self.stride);
        lo.min(out)..hi.min(out).max(lo.min(out))
    }
}

/// `y = 1 / (1 + exp(-x))`.
pub fn sigmoid_forward(x: &[f32]) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().map(|&v| 1.0 / (1.0 + (-v).exp())))
}

/// `y = x > 0 ? x : alpha x`.
pub fn leaky_relu_forward(x: &[f32], alpha: f32) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().map(|&v| if v > 0.0 { v } else { alpha * v }))
}

/// Channels of `parts` stacked per image: `y[n] = parts[0][n] ++ parts[1][n] ++ ...`, where
/// each part holds `batch` images of `per_image[k]` values.
pub fn concat_forward(parts: &[&[f32]], per_image: &[usize], batch: usize) -> Vec<f32> {
    let mut y = scratch::with_capacity(per_image.iter().sum::<usize>() * batch);
    for n in 0..batch {
        for (part, &len) in parts.iter().zip(per_image) {
            y.extend_from_slice(&part[n * len..][..len]);
        }
    }
    y
}

/// `y[n] = x[n][offset..offset + len]`: one block of each image's `total` values (channels
/// `start..end` of planes of `plane` values: `offset = start plane`, `len = (end - start) plane`).
pub fn slice_forward(x: &[f32], total: usize, offset: usize, len: usize) -> Vec<f32> {
    x.chunks(total).flat_map(|image| image[offset..][..len].iter().copied()).collect()
}

/// `y = min(max(alpha x + beta, 0), 1)`.
pub fn hard_sigmoid_forward(x: &[f32], alpha: f32, beta: f32) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().map(|&v| min_f32(1.0, max_f32(0.0, alpha * v + beta))))
}

/// `y = x min(max(x + 3, 0), 6) / 6`.
pub fn hard_swish_forward(x: &[f32]) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().map(|&v| v * min_f32(6.0, max_f32(0.0, v + 3.0)) / 6.0))
}

/// `y[n,c,i] = a[n,c,i] * b[n,c,i / plane]`: `plane` 1 for equal shapes, `H*W` for a map times a
/// per-channel vector.
pub fn mul_forward(a: &[f32], b: &[f32], plane: usize) -> Vec<f32> {
    scratch::collect(a.len(), a.iter().enumerate().map(|(i, &v)| v * b[i / plane]))
}

/// The spatial extent of a [`pad2d_forward`]: input `height x width` planes, with `top`,
/// `left`, `bottom`, `right` zero rows and columns around them.
#[derive(Clone, Copy, Debug)]
pub struct Padding {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
    pub top: usize,
    pub left: usize,
    pub bottom: usize,
    pub right: usize,
}

impl Padding {
    pub fn out_height(&self) -> usize {
        self.top + self.height + self.bottom
    }
    pub fn out_width(&self) -> usize {
        self.left + self.width + self.right
    }
}

/// `y[p, top + i, left + j] = x[p, i, j]`, zero elsewhere (`p` runs over batch x channels).
pub fn pad2d_forward(x: &[f32], g: Padding) -> Vec<f32> {
    let (oh, ow) = (g.out_height(), g.out_width());
    let mut y = scratch::zeroed(g.planes * oh * ow);
    for p in 0..g.planes {
        for i in 0..g.height {
            let src = &x[(p * g.height + i) * g.width..][..g.width];
            y[(p * oh + g.top + i) * ow + g.left..][..g.width].copy_from_slice(src);
        }
    }
    y
}

/// `y[p, i, j] = x[p, i / s, j / s]` over `planes` planes of `height x width` (nearest
/// neighbour, integer scale `s`).
pub fn upsample2d_forward(x: &[f32], planes: usize, height: usize, width: usize, s: usize) -> Vec<f32> {
    let (oh, ow) = (height * s, width * s);
    let mut y = scratch::with_capacity(planes * oh * ow);
    for p in 0..planes {
        for i in 0..oh {
            let row = &x[(p * height + i / s) * width..][..width];
            y.extend((0..ow).map(|j| row[j / s]));
        }
    }
    y
}

/// `max(a, b)` as a compare and a select, for an `a` that is not NaN (a NaN `b` never wins, as
/// with [`f32::max`]). In wasm32 `f32::max` is a call to libm's `fmaxf` (wasm's `f32.max`
/// propagates NaN, Rust's must not): it took a sixth of a batch's forward in the browser.
#[inline(always)]
pub fn max_f32(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// `min(a, b)` as a compare and a select, for an `a` that is not NaN (see [`max_f32`]).
#[inline(always)]
pub fn min_f32(a: f32, b: f32) -> f32 {
    if b < a {
        b
    } else {
        a
    }
}

/// `erf(x)` to about 1.2e-7 relative (Numerical Recipes' Chebyshev fit of `erfc`): Rust's
/// standard library has no `erf`, and WGSL has none either; the GPU's GELU uses the same fit.
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7 + t * (0.374_091_96 + t * (0.096_784_18 + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// `y = x (1 + erf(x / sqrt(2))) / 2`, the exact GELU.
pub fn gelu_forward(x: &[f32]) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().map(|&v| 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))))
}

/// `y = max(x, 0)`.
pub fn relu_forward(x: &[f32]) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().map(|&v| max_f32(0.0, v)))
}

/// `y = min(max(x, lo), hi)`.
pub fn clip_forward(x: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().map(|&v| min_f32(hi, max_f32(lo, v))))
}

/// `y[n,c,i,j] = max_{u,v} x[n,c, i*s+u-p, j*s+v-p]`, padding never wins.
pub fn max_pool2d_forward(x: &[f32], g: Window) -> Vec<f32> {
    let (k, oh, ow) = (g.kernel, g.out_height, g.out_width);
    let mut y = scratch::filled(g.batch * g.in_channels * oh * ow, f32::NEG_INFINITY);
    for nc in 0..g.batch * g.in_channels {
        let plane = &x[nc * g.height * g.width..][..g.height * g.width];
        let out = &mut y[nc * oh * ow..][..oh * ow];
        if g.padding == 0 && k == 2 && g.stride == 2 {
            // The common 2x2 window: the larger of two rows (contiguous, vectorised), then of
            // each pair of columns. NaN never wins (each row's value is first checked against
            // the running -inf), as in the general path; of equal values another may be kept,
            // which changes at most the sign of a zero.
            for (i, out_row) in out.chunks_exact_mut(ow).enumerate() {
                let top = &plane[2 * i * g.width..][..2 * ow];
                let bottom = &plane[(2 * i + 1) * g.width..][..2 * ow];
                max_pool_2x2_row(top, bottom, out_row);
            }
            continue;
        }
        if g.padding == 0 {
            // Every window lies inside the image: rows of taps, no bounds to test.
            for (i, out_row) in out.chunks_exact_mut(ow).enumerate() {
                for u in 0..k {
                    let row = &plane[(i * g.stride + u) * g.width..][..g.width];
                    for v in 0..k {
                        for (o, &value) in out_row.iter_mut().zip(row[v..].iter().step_by(g.stride)) {
                            *o = max_f32(*o, value);
                        }
                    }
                }
            }
            continue;
        }
        for i in 0..oh {
            for j in 0..ow {
                for u in 0..k {
                    let Some(row) = (i * g.stride + u).checked_sub(g.padding).filter(|&r| r < g.height) else {
                        continue;
                    };
                    for v in 0..k {
                        if let Some(col) = (j * g.stride + v).checked_sub(g.padding).filter(|&c| c < g.width) {
                            out[i * ow + j] = max_f32(out[i * ow + j], plane[row * g.width + col]);
                        }
                    }
                }
            }
        }
    }
    y
}

/// `out[j] = max(top[2j], top[2j+1], bottom[2j], bottom[2j+1])`, NaN never winning (each top
/// value is first checked against -inf, as in the general path).
#[inline(always)]
fn max_pool_2x2_row(top: &[f32], bottom: &[f32], out: &mut [f32]) {
    // Outputs written by the vector loop (none outside wasm's simd128).
    #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(unused_mut))]
    let mut done = 0;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // Four outputs per step. `f32x4_pmax(a, b)` is `b > a ? b : a`, i.e. `max_f32`, lane by
        // lane; the compiler does not find the pairwise shuffles itself.
        use std::arch::wasm32::*;
        let load = |s: &[f32], at: usize| {
            let s = &s[at..at + 4];
            // SAFETY: `s` holds four floats; v128 loads need no alignment.
            unsafe { v128_load(s.as_ptr() as *const v128) }
        };
        let lowest = f32x4_splat(f32::NEG_INFINITY);
        for (j, quad) in out.chunks_exact_mut(4).enumerate() {
            let at = 8 * j;
            let lo = f32x4_pmax(f32x4_pmax(lowest, load(top, at)), load(bottom, at));
            let hi = f32x4_pmax(f32x4_pmax(lowest, load(top, at + 4)), load(bottom, at + 4));
            let even = i32x4_shuffle::<0, 2, 4, 6>(lo, hi);
            let odd = i32x4_shuffle::<1, 3, 5, 7>(lo, hi);
            // SAFETY: `quad` holds four floats.
            unsafe { v128_store(quad.as_mut_ptr() as *mut v128, f32x4_pmax(even, odd)) };
            done += 4;
        }
    }
    for j in done..out.len() {
        let pair = |k: usize| max_f32(max_f32(f32::NEG_INFINITY, top[k]), bottom[k]);
        out[j] = max_f32(pair(2 * j), pair(2 * j + 1));
    }
}

/// `y[n,o] = b[o] + sum_i w[o,i] * x[n,i]`: one dot product per output for a few images (the
/// weights are read once either way), the matrix product `x W^T` ([`gemm`]) for a batch.
pub fn linear_forward(x: &[f32], w: &[f32], b: &[f32], batch: usize, in_features: usize, out_features: usize) -> Vec<f32> {
    let mut y: Vec<f32> = (0..batch).flat_map(|_| b.iter().copied()).collect();
    if batch < SMALL_BATCH {
        for n in 0..batch {
            let xs = &x[n * in_features..][..in_features];
            for o in 0..out_features {
                y[n * out_features + o] += dot(xs, &w[o * in_features..][..in_features]);
            }
        }
    } else {
        gemm(batch, out_features, in_features, Mat::rows(x, in_features), Mat::transposed(w, in_features), &mut y, out_features);
    }
    y
}

/// Below this many images a dense layer runs as dot products: packing the whole weight matrix
/// for the matrix product would cost more than it saves.
pub const SMALL_BATCH: usize = 4;

/// `y[n,c,i,j] = mean_{u,v} x[n,c, i*s+u-p, j*s+v-p]`; zero padding counts in the divisor `k*k`.
pub fn avg_pool2d_forward(x: &[f32], g: Window) -> Vec<f32> {
    let (k, oh, ow) = (g.kernel, g.out_height, g.out_width);
    let scale = 1.0 / (k * k) as f32;
    let mut y = scratch::zeroed(g.batch * g.in_channels * oh * ow);
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
    let values = (0..batch * channels).flat_map(|nc| {
        let c = nc % channels;
        x[nc * plane..][..plane].iter().map(move |v| v * scale[c] + shift[c])
    });
    scratch::collect(x.len(), values)
}

/// The folded `(scale, shift)` of an inference batch norm.
pub fn batch_norm_fold(weight: &[f32], bias: &[f32], mean: &[f32], var: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = weight.iter().zip(var).map(|(w, v)| w / (v + eps).sqrt()).collect();
    let shift = bias.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (scale, shift)
}

/// `y = a + b`.
pub fn add_forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    scratch::collect(a.len(), a.iter().zip(b).map(|(x, y)| x + y))
}

/// `sum_i a[i] * b[i]` with eight independent partial sums, which the compiler vectorises
/// (a single running sum cannot be reordered, so it stays scalar).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}
