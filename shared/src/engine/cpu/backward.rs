//! Backward (vector-Jacobian products) of every layer with respect to its input, beside the
//! forward in `layers.rs`. `d_y` is the gradient at a layer's output, `d_x` at its input.
//! Weight gradients are not needed here: the engines explain and attack, they do not train.

use super::gemm::{gemm, gemm_packed, Mat, PackedA};
use super::layers::{self, Padding, Window, SMALL_BATCH};
use super::scratch;

/// Through `y = (x - mean[c]) / std[c]`: `d_x = d_y / std[c]`.
pub fn normalize_backward(d_y: &[f32], batch: usize, std: &[f32], plane: usize) -> Vec<f32> {
    let channels = std.len();
    let mut d_x = scratch::with_capacity(d_y.len());
    for n in 0..batch {
        for c in 0..channels {
            let base = (n * channels + c) * plane;
            d_x.extend(d_y[base..base + plane].iter().map(|g| g / std[c]));
        }
    }
    d_x
}

/// Through a convolution: `d_x[n,c,r,s] = sum_{o,u,v: r = i*st+u-p, s = j*st+v-p} w[o,c,u,v] d_y[n,o,i,j]`,
/// computed as the matrix product `d_cols = W^T d_y` ([`gemm`]) followed by `col2im` (the
/// transpose of the forward); for a pointwise window `d_cols` is `d_x` itself.
pub fn conv2d_backward(d_y: &[f32], w: &[f32], g: Window, out_channels: usize, groups: usize) -> Vec<f32> {
    let weights_t = layers::pack_conv_weights(w, out_channels, g.in_channels / groups * g.kernel * g.kernel, groups, true);
    conv2d_backward_packed(d_y, &weights_t, g, out_channels, groups)
}

/// [`conv2d_backward`] with the weights packed by [`layers::pack_conv_weights`] (transposed).
pub fn conv2d_backward_packed(d_y: &[f32], weights_t: &[PackedA], g: Window, out_channels: usize, groups: usize) -> Vec<f32> {
    let pixels = g.out_height * g.out_width;
    // One group at a time, as in the forward pass: its outputs reach only its inputs.
    let group = Window { in_channels: g.in_channels / groups, ..g };
    let (plane, per_group_out) = (g.height * g.width, out_channels / groups);
    let taps = group.in_channels * g.kernel * g.kernel;
    assert!(
        weights_t.len() == groups && weights_t.iter().all(|w| (w.rows(), w.cols()) == (taps, per_group_out)),
        "the packed weights do not fit this convolution"
    );
    let image = g.in_channels * plane;
    let mut d_x = scratch::zeroed(g.batch * image);
    let mut d_cols = if g.is_pointwise() { Vec::new() } else { scratch::zeroed(taps * pixels) };
    for (grp, weights_t) in weights_t.iter().enumerate() {
        for n in 0..g.batch {
            let d_out = &d_y[(n * out_channels + grp * per_group_out) * pixels..][..per_group_out * pixels];
            let first = n * image + grp * group.in_channels * plane;
            let d_in = &mut d_x[first..][..group.in_channels * plane];
            if g.is_pointwise() {
                gemm_packed(weights_t, pixels, Mat::rows(d_out, pixels), d_in, pixels);
            } else {
                d_cols.fill(0.0);
                gemm_packed(weights_t, pixels, Mat::rows(d_out, pixels), &mut d_cols, pixels);
                layers::col2im(&d_cols, group, d_in);
            }
        }
    }
    scratch::recycle(d_cols);
    d_x
}

/// Through a transposed convolution: its input gradient is the forward of the convolution it
/// transposes (same window `g`, weight read as `[in_channels, out_channels / groups, k, k]`),
/// without bias.
pub fn conv_transpose2d_backward(d_y: &[f32], w: &[f32], g: Window, in_channels: usize, groups: usize) -> Vec<f32> {
    layers::conv2d_forward(d_y, w, &vec![0.0; in_channels], g, in_channels, groups)
}

/// Through `max(x, 0)`: the gradient passes where `x > 0`.
pub fn relu_backward(x: &[f32], d_y: &[f32]) -> Vec<f32> {
    scratch::collect(x.len(), x.iter().zip(d_y).map(|(&v, &g)| if v > 0.0 { g } else { 0.0 }))
}

/// Through a sigmoid, from its output `y`: `d_x = d_y * y * (1 - y)`.
pub fn sigmoid_backward(y: &[f32], d_y: &[f32]) -> Vec<f32> {
    y.iter().zip(d_y).map(|(&v, &g)| g * v * (1.0 - v)).collect()
}

/// Through a leaky ReLU: `d_x = x > 0 ? d_y : alpha d_y`.
pub fn leaky_relu_backward(x: &[f32], d_y: &[f32], alpha: f32) -> Vec<f32> {
    x.iter().zip(d_y).map(|(&v, &g)| if v > 0.0 { g } else { alpha * g }).collect()
}

/// Through a channel concatenation: each input gets its own channels of `d_y` back.
pub fn concat_backward(d_y: &[f32], per_image: &[usize], batch: usize) -> Vec<Vec<f32>> {
    let total: usize = per_image.iter().sum();
    let mut offset = 0;
    per_image
        .iter()
        .map(|&len| {
            let part = (0..batch).flat_map(|n| d_y[n * total + offset..][..len].iter().copied()).collect();
            offset += len;
            part
        })
        .collect()
}

/// Through a slice: each image's block of `len` values goes back to `offset` of its `total`,
/// zeros elsewhere.
pub fn slice_backward(d_y: &[f32], total: usize, offset: usize, len: usize) -> Vec<f32> {
    let mut d_x = vec![0.0; d_y.len() / len.max(1) * total];
    for (image, block) in d_x.chunks_mut(total).zip(d_y.chunks(len)) {
        image[offset..][..len].copy_from_slice(block);
    }
    d_x
}

/// Through a hard sigmoid: `d_x = alpha d_y` where `0 < alpha x + beta < 1`, else 0.
pub fn hard_sigmoid_backward(x: &[f32], d_y: &[f32], alpha: f32, beta: f32) -> Vec<f32> {
    x.iter().zip(d_y).map(|(&v, &g)| if alpha * v + beta > 0.0 && alpha * v + beta < 1.0 { alpha * g } else { 0.0 }).collect()
}

/// Through a hard swish: `d_x = 0` below -3, `d_y (x / 3 + 1/2)` up to 3, `d_y` above.
pub fn hard_swish_backward(x: &[f32], d_y: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(d_y)
        .map(|(&v, &g)| if v < -3.0 { 0.0 } else if v <= 3.0 { g * (v / 3.0 + 0.5) } else { g })
        .collect()
}

/// Through the exact GELU: `d_x = d_y (Φ(x) + x φ(x))`, `Φ(x) = (1 + erf(x / sqrt(2))) / 2`,
/// `φ(x) = exp(-x^2 / 2) / sqrt(2 pi)`.
pub fn gelu_backward(x: &[f32], d_y: &[f32]) -> Vec<f32> {
    let inv_sqrt_2pi = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
    x.iter()
        .zip(d_y)
        .map(|(&v, &g)| g * (0.5 * (1.0 + layers::erf(v * std::f32::consts::FRAC_1_SQRT_2)) + v * inv_sqrt_2pi * (-0.5 * v * v).exp()))
        .collect()
}

/// Through `y[i] = a[i] * b[i / plane]`: `d_a[i] = d_y[i] b[i / plane]` and
/// `d_b[m] = sum_{i / plane = m} d_y[i] a[i]`.
pub fn mul_backward(a: &[f32], b: &[f32], d_y: &[f32], plane: usize) -> (Vec<f32>, Vec<f32>) {
    let d_a = d_y.iter().enumerate().map(|(i, &g)| g * b[i / plane]).collect();
    let d_b = (0..b.len()).map(|m| d_y[m * plane..][..plane].iter().zip(&a[m * plane..][..plane]).map(|(g, v)| g * v).sum()).collect();
    (d_a, d_b)
}

/// Through a clip: `d_x = lo < x < hi ? d_y : 0` (PyTorch's hardtanh backward).
pub fn clip_backward(x: &[f32], d_y: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    x.iter().zip(d_y).map(|(&v, &g)| if v > lo && v < hi { g } else { 0.0 }).collect()
}

/// Through max pooling: each window's gradient goes to its maximum — the first one in
/// row-major order on ties, as libtorch does (ties are common after a ReLU).
pub fn max_pool2d_backward(x: &[f32], d_y: &[f32], g: Window) -> Vec<f32> {
    let (k, oh, ow) = (g.kernel, g.out_height, g.out_width);
    let mut d_x = scratch::zeroed(x.len());
    for nc in 0..g.batch * g.in_channels {
        let plane = &x[nc * g.height * g.width..][..g.height * g.width];
        let d_plane = &mut d_x[nc * g.height * g.width..][..g.height * g.width];
        let d_out = &d_y[nc * oh * ow..][..oh * ow];
        if (k, g.stride, g.padding) == (2, 2, 0) {
            pool_2x2_backward(plane, d_out, d_plane, g.width, ow);
            continue;
        }
        for i in 0..oh {
            for j in 0..ow {
                let best = if g.padding == 0 {
                    // The whole window is inside: start from its first tap.
                    let first = i * g.stride * g.width + j * g.stride;
                    let mut best = (first, plane[first]);
                    for u in 0..k {
                        let row = first + u * g.width;
                        for (v, &value) in plane[row..][..k].iter().enumerate() {
                            let better = value > best.1;
                            best = (if better { row + v } else { best.0 }, if better { value } else { best.1 });
                        }
                    }
                    Some(best)
                } else {
                    first_max_with_padding(plane, g, i, j)
                };
                if let Some((at, _)) = best {
                    d_plane[at] += d_out[i * ow + j];
                }
            }
        }
    }
    d_x
}

/// [`max_pool2d_backward`] for the common 2x2 window with stride 2 and no padding, one pair of
/// input rows at a time: the maximum of each window, then the first of its four taps equal to
/// it (top-left, top-right, bottom-left, bottom-right) takes the gradient.
fn pool_2x2_backward(plane: &[f32], d_out: &[f32], d_plane: &mut [f32], width: usize, ow: usize) {
    if ow == 0 {
        return;
    }
    for (i, d_row) in d_out.chunks_exact(ow).enumerate() {
        let (top, bottom) = (&plane[2 * i * width..][..2 * ow], &plane[(2 * i + 1) * width..][..2 * ow]);
        let (d_top, d_bottom) = d_plane[2 * i * width..].split_at_mut(width);
        let (d_top, d_bottom) = (&mut d_top[..2 * ow], &mut d_bottom[..2 * ow]);
        let done = pool_2x2_backward_quads(top, bottom, d_row, d_top, d_bottom);
        if done == 0 {
            // No vector steps on this target: one window at a time.
            for j in 0..ow {
                let d = pool_2x2_window_backward([top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]], d_row[j]);
                (d_top[2 * j], d_top[2 * j + 1], d_bottom[2 * j], d_bottom[2 * j + 1]) = (d[0], d[1], d[2], d[3]);
            }
        } else if done < ow {
            // The last 1-3 windows as one more vector step on copies padded with zeros (their
            // outputs are dropped): one window at a time costs more than the whole step.
            let rest = ow - done;
            let (mut t, mut b, mut d, mut dt, mut db) = ([0.0; 8], [0.0; 8], [0.0; 4], [0.0; 8], [0.0; 8]);
            t[..2 * rest].copy_from_slice(&top[2 * done..]);
            b[..2 * rest].copy_from_slice(&bottom[2 * done..]);
            d[..rest].copy_from_slice(&d_row[done..]);
            pool_2x2_backward_quads(&t, &b, &d, &mut dt, &mut db);
            d_top[2 * done..].copy_from_slice(&dt[..2 * rest]);
            d_bottom[2 * done..].copy_from_slice(&db[..2 * rest]);
        }
    }
}

/// One window's taps (scan order) and the gradient `d` at its maximum: `d` at the first tap
/// equal to the maximum (kept as `max_f32` keeps it: NaN never wins), zero at the others.
/// Without branches (after a ReLU, which tap wins is unpredictable): the choice is a bit mask,
/// as in the vector steps.
#[inline(always)]
fn pool_2x2_window_backward(taps: [f32; 4], d: f32) -> [f32; 4] {
    let max = taps.into_iter().fold(f32::NEG_INFINITY, layers::max_f32);
    let hit = |v: f32| 0u32.wrapping_sub((v == max) as u32);
    let e0 = hit(taps[0]);
    let e1 = hit(taps[1]) & !e0;
    let e2 = hit(taps[2]) & !(e0 | e1);
    let e3 = !(e0 | e1 | e2);
    [e0, e1, e2, e3].map(|mask| f32::from_bits(d.to_bits() & mask))
}

/// Four windows at a time where the target has 4-lane vectors (SSE2 on x86_64, simd128 in
/// wasm32), exactly as [`pool_2x2_window_backward`] does each: the taps' even and odd columns
/// deinterleaved by shuffles, the first-equal test as masks, the gradients interleaved back.
/// The scalar loop was not vectorised by the compiler (2x slower on 64 MNIST batches).
/// Returns how many windows of the row it did.
#[allow(unused_variables, unreachable_code)]
fn pool_2x2_backward_quads(top: &[f32], bottom: &[f32], d_row: &[f32], d_top: &mut [f32], d_bottom: &mut [f32]) -> usize {
    let quads = d_row.len() / 4;
    assert!(top.len() >= 8 * quads && bottom.len() >= 8 * quads && d_top.len() >= 8 * quads && d_bottom.len() >= 8 * quads);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        for q in 0..quads {
            let (at, j) = (8 * q, 4 * q);
            // SAFETY: SSE2 is part of x86_64; the loads and stores read 8 values from `at` in
            // slices of at least `8 * quads` (asserted) and 4 from `j` in `d_row`.
            unsafe {
                let (t, b) = (top.as_ptr().add(at), bottom.as_ptr().add(at));
                let (t_lo, t_hi, b_lo, b_hi) = (_mm_loadu_ps(t), _mm_loadu_ps(t.add(4)), _mm_loadu_ps(b), _mm_loadu_ps(b.add(4)));
                let (t0, t1) = (_mm_shuffle_ps::<0x88>(t_lo, t_hi), _mm_shuffle_ps::<0xDD>(t_lo, t_hi));
                let (b0, b1) = (_mm_shuffle_ps::<0x88>(b_lo, b_hi), _mm_shuffle_ps::<0xDD>(b_lo, b_hi));
                // `max_f32(a, b)`: b > a ? b : a.
                let max_f32 = |a: __m128, b: __m128| {
                    let greater = _mm_cmpgt_ps(b, a);
                    _mm_or_ps(_mm_and_ps(greater, b), _mm_andnot_ps(greater, a))
                };
                let max = max_f32(max_f32(max_f32(max_f32(_mm_set1_ps(f32::NEG_INFINITY), t0), t1), b0), b1);
                // `_mm_andnot_ps(a, b)` is `!a & b`.
                let e0 = _mm_cmpeq_ps(t0, max);
                let e1 = _mm_andnot_ps(e0, _mm_cmpeq_ps(t1, max));
                let taken = _mm_or_ps(e0, e1);
                let e2 = _mm_andnot_ps(taken, _mm_cmpeq_ps(b0, max));
                let e3 = _mm_andnot_ps(_mm_or_ps(taken, e2), _mm_castsi128_ps(_mm_set1_epi32(-1)));
                let d = _mm_loadu_ps(d_row.as_ptr().add(j));
                let (g0, g1, g2, g3) = (_mm_and_ps(e0, d), _mm_and_ps(e1, d), _mm_and_ps(e2, d), _mm_and_ps(e3, d));
                let (dt, db) = (d_top.as_mut_ptr().add(at), d_bottom.as_mut_ptr().add(at));
                _mm_storeu_ps(dt, _mm_unpacklo_ps(g0, g1));
                _mm_storeu_ps(dt.add(4), _mm_unpackhi_ps(g0, g1));
                _mm_storeu_ps(db, _mm_unpacklo_ps(g2, g3));
                _mm_storeu_ps(db.add(4), _mm_unpackhi_ps(g2, g3));
            }
        }
        return 4 * quads;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use std::arch::wasm32::*;
        for q in 0..quads {
            let (at, j) = (8 * q, 4 * q);
            // SAFETY: as above: 8 values from `at`, 4 from `j`, inside the asserted lengths;
            // v128 loads and stores need no alignment.
            unsafe {
                let load = |p: *const f32| v128_load(p as *const v128);
                let (t, b) = (top.as_ptr().add(at), bottom.as_ptr().add(at));
                let (t_lo, t_hi, b_lo, b_hi) = (load(t), load(t.add(4)), load(b), load(b.add(4)));
                let (t0, t1) = (i32x4_shuffle::<0, 2, 4, 6>(t_lo, t_hi), i32x4_shuffle::<1, 3, 5, 7>(t_lo, t_hi));
                let (b0, b1) = (i32x4_shuffle::<0, 2, 4, 6>(b_lo, b_hi), i32x4_shuffle::<1, 3, 5, 7>(b_lo, b_hi));
                // `f32x4_pmax(a, b)` is `b > a ? b : a`, i.e. `max_f32`.
                let max = f32x4_pmax(f32x4_pmax(f32x4_pmax(f32x4_pmax(f32x4_splat(f32::NEG_INFINITY), t0), t1), b0), b1);
                // `v128_andnot(a, b)` is `a & !b`.
                let e0 = f32x4_eq(t0, max);
                let e1 = v128_andnot(f32x4_eq(t1, max), e0);
                let taken = v128_or(e0, e1);
                let e2 = v128_andnot(f32x4_eq(b0, max), taken);
                let e3 = v128_not(v128_or(taken, e2));
                let d = load(d_row.as_ptr().add(j));
                let (g0, g1, g2, g3) = (v128_and(e0, d), v128_and(e1, d), v128_and(e2, d), v128_and(e3, d));
                let (dt, db) = (d_top.as_mut_ptr().add(at) as *mut v128, d_bottom.as_mut_ptr().add(at) as *mut v128);
                v128_store(dt, i32x4_shuffle::<0, 4, 1, 5>(g0, g1));
                v128_store(dt.add(1), i32x4_shuffle::<2, 6, 3, 7>(g0, g1));
                v128_store(db, i32x4_shuffle::<0, 4, 1, 5>(g2, g3));
                v128_store(db.add(1), i32x4_shuffle::<2, 6, 3, 7>(g2, g3));
            }
        }
        return 4 * quads;
    }
    0
}

/// The first tap (in scan order) holding the maximum of window `(i, j)`, skipping padding.
fn first_max_with_padding(plane: &[f32], g: Window, i: usize, j: usize) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for u in 0..g.kernel {
        let Some(row) = (i * g.stride + u).checked_sub(g.padding).filter(|&r| r < g.height) else {
            continue;
        };
        for v in 0..g.kernel {
            if let Some(col) = (j * g.stride + v).checked_sub(g.padding).filter(|&c| c < g.width) {
                let at = row * g.width + col;
                if best.is_none_or(|(_, b)| plane[at] > b) {
                    best = Some((at, plane[at]));
                }
            }
        }
    }
    best
}

/// Through average pooling (padding counted in the divisor, PyTorch's default).
pub fn avg_pool2d_backward(d_y: &[f32], g: Window) -> Vec<f32> {
    let (k, oh, ow) = (g.kernel, g.out_height, g.out_width);
    let scale = 1.0 / (k * k) as f32;
    let mut d_x = scratch::zeroed(g.batch * g.in_channels * g.height * g.width);
    for nc in 0..g.batch * g.in_channels {
        for i in 0..oh {
            for j in 0..ow {
                let share = d_y[(nc * oh + i) * ow + j] * scale;
                for u in 0..k {
                    let Some(row) = (i * g.stride + u).checked_sub(g.padding).filter(|&r| r < g.height) else {
                        continue;
                    };
                    for v in 0..k {
                        if let Some(col) = (j * g.stride + v).checked_sub(g.padding).filter(|&c| c < g.width) {
                            d_x[(nc * g.height + row) * g.width + col] += share;
                        }
                    }
                }
            }
        }
    }
    d_x
}

/// Through `y[n,c] = mean_{h,w} x[n,c,h,w]`.
pub fn global_avg_pool_backward(d_y: &[f32], planes: usize, plane: usize) -> Vec<f32> {
    scratch::collect(planes * plane, (0..planes).flat_map(|p| std::iter::repeat_n(d_y[p] / plane as f32, plane)))
}

/// Through `y = x W^T + b`: `d_x = d_y W` (row updates for a few images, [`gemm`] for a batch).
pub fn linear_backward(d_y: &[f32], w: &[f32], batch: usize, in_features: usize, out_features: usize) -> Vec<f32> {
    let mut d_x = vec![0.0; batch * in_features];
    if batch >= SMALL_BATCH {
        gemm(batch, in_features, out_features, Mat::rows(d_y, out_features), Mat::rows(w, in_features), &mut d_x, in_features);
        return d_x;
    }
    for n in 0..batch {
        let d_in = &mut d_x[n * in_features..][..in_features];
        for o in 0..out_features {
            layers::axpy(d_in, d_y[n * out_features + o], &w[o * in_features..][..in_features]);
        }
    }
    d_x
}

/// Through inference batch norm `y = x * scale[c] + shift[c]`: `d_x = d_y * scale[c]`.
pub fn batch_norm_backward(d_y: &[f32], scale: &[f32], batch: usize, plane: usize) -> Vec<f32> {
    let channels = scale.len();
    scratch::collect(d_y.len(), (0..batch * channels).flat_map(|nc| d_y[nc * plane..][..plane].iter().map(move |g| g * scale[nc % channels])))
}

/// Through zero padding: `d_x[p, i, j] = d_y[p, top + i, left + j]`, the crop of the output
/// gradient (the padding's zeros depend on nothing).
pub fn pad2d_backward(d_y: &[f32], g: Padding) -> Vec<f32> {
    let (oh, ow) = (g.out_height(), g.out_width());
    let mut d_x = scratch::with_capacity(g.planes * g.height * g.width);
    for p in 0..g.planes {
        for i in 0..g.height {
            d_x.extend_from_slice(&d_y[(p * oh + g.top + i) * ow + g.left..][..g.width]);
        }
    }
    d_x
}

/// Through nearest-neighbour upsampling by `s`: `d_x[p, i, j]` is the sum of the `s x s` block
/// of `d_y` that copied `x[p, i, j]`.
pub fn upsample2d_backward(d_y: &[f32], planes: usize, height: usize, width: usize, s: usize) -> Vec<f32> {
    let (oh, ow) = (height * s, width * s);
    let mut d_x = vec![0.0; planes * height * width];
    for p in 0..planes {
        for i in 0..oh {
            let out = &d_y[(p * oh + i) * ow..][..ow];
            let row = &mut d_x[(p * height + i / s) * width..][..width];
            for (j, &g) in out.iter().enumerate() {
                row[j / s] += g;
            }
        }
    }
    d_x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_seed, Rng};

    /// The 2x2 max pool's backward (four windows per vector step, the rest one by one) against
    /// its definition: each window's gradient goes to the first of its taps, in scan order,
    /// equal to the window's maximum; ties are common (the zeros after a ReLU). With NaN among
    /// the taps (which never wins) the vector steps agree with the one-window function. Rows
    /// of 1 to 11 windows: vector steps, tails, and an odd image width whose last column no
    /// window reads.
    #[test]
    fn pool_2x2_backward_sends_each_gradient_to_the_first_maximum() {
        let seed = fresh_seed();
        let mut rng = Rng::new(seed);
        for ow in 1..=11 {
            for with_nan in [false, true] {
                let (oh, width) = (3, 2 * ow + ow % 2);
                let levels = [0.0, 0.0, 0.0, 1.0, 2.0, -1.0, if with_nan { f32::NAN } else { 0.5 }];
                let plane: Vec<f32> = (0..2 * oh * width).map(|_| levels[(rng.next_u64() % levels.len() as u64) as usize]).collect();
                let d_out: Vec<f32> = (0..oh * ow).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let mut d_plane = vec![0.0; plane.len()];
                pool_2x2_backward(&plane, &d_out, &mut d_plane, width, ow);
                // x86_64 always has the vector steps: they do every whole quad of windows.
                if cfg!(target_arch = "x86_64") {
                    let (mut dt, mut db) = (vec![0.0; 2 * ow], vec![0.0; 2 * ow]);
                    let done = pool_2x2_backward_quads(&plane[..2 * ow], &plane[width..][..2 * ow], &d_out[..ow], &mut dt, &mut db);
                    assert_eq!(done, ow / 4 * 4, "windows done by the vector steps in a row of {ow}");
                }
                let mut expected = vec![0.0; plane.len()];
                for i in 0..oh {
                    for j in 0..ow {
                        let at = [2 * i * width + 2 * j, 2 * i * width + 2 * j + 1, (2 * i + 1) * width + 2 * j, (2 * i + 1) * width + 2 * j + 1];
                        let taps = at.map(|k| plane[k]);
                        let d = if with_nan {
                            pool_2x2_window_backward(taps, d_out[i * ow + j])
                        } else {
                            let max = taps.iter().copied().fold(f32::MIN, f32::max);
                            let first = taps.iter().position(|&v| v == max).unwrap();
                            std::array::from_fn(|k| if k == first { d_out[i * ow + j] } else { 0.0 })
                        };
                        for (k, v) in at.into_iter().zip(d) {
                            expected[k] = v;
                        }
                    }
                }
                for (k, (got, want)) in d_plane.iter().zip(&expected).enumerate() {
                    assert!(got.to_bits() == want.to_bits(), "ow {ow}, NaN {with_nan} (seed {seed}): d_x[{k}] = {got}, expected {want}");
                }
            }
        }
    }
}
