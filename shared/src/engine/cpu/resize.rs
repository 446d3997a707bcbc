//! Bilinear upsampling by an integer factor (ONNX `Resize` in linear mode, PyTorch's
//! `Upsample(mode="bilinear")` and `F.interpolate`), forward and input gradient. Each output
//! pixel mixes the two nearest input rows and the two nearest input columns, with weights
//! from where the output pixel's centre falls in the input ([`tap`]).

/// Where output index `dst` of an axis of `n` inputs and `n * s` outputs reads: the two input
/// indices and the weight of the second, `(i0, i1, l)`, so that `y = (1 - l) x[i0] + l x[i1]`.
/// Half-pixel centres (`align_corners = false`, PyTorch's default and ONNX's `half_pixel`):
/// `src = max((dst + 1/2) / s - 1/2, 0)`; corners aligned: `src = dst (n - 1) / (n s - 1)`.
/// Then `i0 = floor(src)`, `i1 = min(i0 + 1, n - 1)`, `l = src - i0`.
pub fn tap(dst: usize, n: usize, s: usize, align_corners: bool) -> (usize, usize, f32) {
    let m = n * s;
    let src = if align_corners {
        if m > 1 { dst as f32 * (n - 1) as f32 / (m - 1) as f32 } else { 0.0 }
    } else {
        ((dst as f32 + 0.5) / s as f32 - 0.5).max(0.0)
    };
    let i0 = (src as usize).min(n - 1);
    (i0, (i0 + 1).min(n - 1), src - i0 as f32)
}

/// The taps of every output index of an axis.
fn taps(n: usize, s: usize, align_corners: bool) -> Vec<(usize, usize, f32)> {
    (0..n * s).map(|dst| tap(dst, n, s, align_corners)).collect()
}

/// `y[p,i,j] = sum over the taps (r, lr) of row i and (c, lc) of column j of lr lc x[p,r,c]`,
/// over `planes` planes of `height x width`.
pub fn resize_bilinear_forward(x: &[f32], planes: usize, height: usize, width: usize, s: usize, align_corners: bool) -> Vec<f32> {
    let (rows, cols) = (taps(height, s, align_corners), taps(width, s, align_corners));
    let mut y = Vec::with_capacity(planes * rows.len() * cols.len());
    for plane in x.chunks_exact(height * width).take(planes) {
        for &(r0, r1, lr) in &rows {
            let (top, bottom) = (&plane[r0 * width..][..width], &plane[r1 * width..][..width]);
            y.extend(cols.iter().map(|&(c0, c1, lc)| {
                let upper = top[c0] + lc * (top[c1] - top[c0]);
                let lower = bottom[c0] + lc * (bottom[c1] - bottom[c0]);
                upper + lr * (lower - upper)
            }));
        }
    }
    y
}

/// Through [`resize_bilinear_forward`]: each output gradient goes back to its four taps with
/// their weights.
pub fn resize_bilinear_backward(d_y: &[f32], planes: usize, height: usize, width: usize, s: usize, align_corners: bool) -> Vec<f32> {
    let (rows, cols) = (taps(height, s, align_corners), taps(width, s, align_corners));
    let mut d_x = vec![0.0; planes * height * width];
    for (plane, d_plane) in d_x.chunks_exact_mut(height * width).zip(d_y.chunks_exact(rows.len() * cols.len())) {
        for (&(r0, r1, lr), d_row) in rows.iter().zip(d_plane.chunks_exact(cols.len())) {
            for (&(c0, c1, lc), &g) in cols.iter().zip(d_row) {
                let (upper, lower) = ((1.0 - lr) * g, lr * g);
                plane[r0 * width + c0] += (1.0 - lc) * upper;
                plane[r0 * width + c1] += lc * upper;
                plane[r1 * width + c0] += (1.0 - lc) * lower;
                plane[r1 * width + c1] += lc * lower;
            }
        }
    }
    d_x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_match_pytorchs_coordinates() {
        // Half-pixel, 2 -> 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (i1 clamped).
        let half: Vec<_> = (0..4).map(|d| tap(d, 2, 2, false)).collect();
        assert_eq!(half, vec![(0, 1, 0.0), (0, 1, 0.25), (0, 1, 0.75), (1, 1, 0.25)]);
        // Corners aligned, 2 -> 4: sources 0, 1/3, 2/3, 1.
        let aligned: Vec<_> = (0..4).map(|d| tap(d, 2, 2, true)).collect();
        assert_eq!((aligned[0], aligned[3]), ((0, 1, 0.0), (1, 1, 0.0)));
        assert!((aligned[1].2 - 1.0 / 3.0).abs() < 1e-7 && (aligned[2].2 - 2.0 / 3.0).abs() < 1e-7);
        // A constant image stays constant; a ramp along the corners stays a ramp.
        let y = resize_bilinear_forward(&[2.0; 6], 1, 2, 3, 3, false);
        assert!(y.iter().all(|&v| (v - 2.0).abs() < 1e-6));
        let y = resize_bilinear_forward(&[0.0, 1.0], 1, 1, 2, 2, true);
        assert_eq!(y.len(), 2 * 4);
        assert!(y[..4].iter().zip([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-6), "{y:?}");
    }

    #[test]
    fn the_backward_is_the_adjoint_of_the_forward() {
        // <resize(x), g> = <x, resize^T(g)> for any x, g.
        for align in [false, true] {
            let (h, w, s) = (3, 4, 3);
            let x: Vec<f32> = (0..2 * h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let g: Vec<f32> = (0..2 * h * w * s * s).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
            let y = resize_bilinear_forward(&x, 2, h, w, s, align);
            let d_x = resize_bilinear_backward(&g, 2, h, w, s, align);
            let left: f64 = y.iter().zip(&g).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let right: f64 = x.iter().zip(&d_x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            assert!((left - right).abs() < 1e-3 * left.abs().max(1.0), "{align}: {left} vs {right}");
        }
    }
}
