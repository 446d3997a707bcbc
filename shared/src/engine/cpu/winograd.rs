//! 3x3 stride-1 convolutions as Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016).
//!
//! The output is cut into 2x2 tiles; the 4x4 input patch `d` under each tile and the 3x3 filter
//! `g` of each (output, input) channel pair are moved into a 4x4 "Winograd domain", where the
//! convolution of one tile is an elementwise product:
//!
//! `Y = A^T [ sum_c (G g_{o,c} G^T) * (B^T d_c B) ] A`
//!
//! Summed over the input channels, each of the 16 positions `xi` of the 4x4 domain is a matrix
//! product `M_xi = U_xi V_xi` (`U_xi`: `Cout x Cin`, the filters; `V_xi`: `Cin x tiles`, the
//! patches), run on [`gemm_packed`]. Per output pixel that is 16/4 = 4 multiplications per
//! (output, input) channel pair instead of 9; the transforms are additions (and halvings of the
//! filter, done once per model), linear in the channels rather than in their product.
//!
//! Results equal the direct convolution's up to rounding (the transforms add a few terms of
//! the patch before multiplying): within a few units of 1e-7 of the sum of magnitudes, checked
//! below against [`super::layers::conv2d_forward`].

use super::gemm::{gemm_packed, Mat, PackedA};
use super::layers::Window;
use super::scratch;

/// Fewer input or output channels than this and the transforms cost more than they save (a
/// first layer on one or three colour channels stays on im2col).
const MIN_CHANNELS: usize = 8;

/// Whether [`forward`] computes the convolution `g` with `groups` groups and `out_channels`
/// outputs: a 3x3 kernel, stride 1, no dilation, one group, and enough channels to pay for the
/// transforms.
pub fn applies(g: &Window, groups: usize, out_channels: usize) -> bool {
    g.kernel == 3
        && g.stride == 1
        && g.dilation == 1
        && groups == 1
        && g.in_channels >= MIN_CHANNELS
        && out_channels >= MIN_CHANNELS
}

/// `U_xi = (G g G^T)[xi]` for every filter `g` of `w` (`[Cout, Cin, 3, 3]`), as 16 packed
/// `Cout x Cin` matrices, with `G = [[1,0,0], [1/2,1/2,1/2], [1/2,-1/2,1/2], [0,0,1]]`.
pub fn pack_weights(w: &[f32], out_channels: usize, in_channels: usize) -> Vec<PackedA> {
    let pairs = out_channels * in_channels;
    assert_eq!(w.len(), pairs * 9, "a 3x3 convolution's weights are [Cout, Cin, 3, 3]");
    let mut u = vec![0.0f32; 16 * pairs];
    for (pair, g) in w.chunks_exact(9).enumerate() {
        for (xi, value) in filter_transform(g).into_iter().enumerate() {
            u[xi * pairs + pair] = value;
        }
    }
    u.chunks_exact(pairs)
        .map(|u| PackedA::new(Mat::rows(u, in_channels), out_channels, in_channels))
        .collect()
}

/// `G g G^T` for one row-major 3x3 filter, row-major 4x4 (in f64: it is done once per model).
fn filter_transform(g: &[f32]) -> [f32; 16] {
    let g: Vec<f64> = g.iter().map(|&v| v as f64).collect();
    // `G g`: 4 x 3.
    let mut gg = [[0.0f64; 3]; 4];
    for j in 0..3 {
        let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
        gg[0][j] = a;
        gg[1][j] = 0.5 * (a + b + c);
        gg[2][j] = 0.5 * (a - b + c);
        gg[3][j] = c;
    }
    // `(G g) G^T`: 4 x 4.
    let mut u = [0.0f32; 16];
    for (r, row) in gg.iter().enumerate() {
        let [a, b, c] = *row;
        u[r * 4] = a as f32;
        u[r * 4 + 1] = (0.5 * (a + b + c)) as f32;
        u[r * 4 + 2] = (0.5 * (a - b + c)) as f32;
        u[r * 4 + 3] = c as f32;
    }
    u
}

/// `y = conv(x, w) + b` for a convolution that [`applies`], with `u` from [`pack_weights`].
pub fn forward(x: &[f32], u: &[PackedA], b: &[f32], g: Window, out_channels: usize) -> Vec<f32> {
    let (cin, cout) = (g.in_channels, out_channels);
    assert!(
        applies(&g, 1, cout) && u.len() == 16 && u.iter().all(|u| (u.rows(), u.cols()) == (cout, cin)),
        "the Winograd weights do not fit this convolution"
    );
    let (oh, ow) = (g.out_height, g.out_width);
    let tiles = Tiles { rows: oh.div_ceil(2), cols: ow.div_ceil(2) };
    let count = tiles.rows * tiles.cols;
    let (image, out_image) = (cin * g.height * g.width, cout * oh * ow);
    // Several images per product when one has few tiles: a few hundred columns keep the
    // micro-kernel's strips full (14x14 outputs are 49 tiles: one strip in seven half empty).
    let chunk = COLUMNS.div_ceil(count).clamp(1, g.batch.max(1));
    let mut y = scratch::zeroed(g.batch * out_image);
    let mut v = scratch::zeroed(16 * cin * chunk * count);
    let mut m = scratch::zeroed(16 * cout * chunk * count);
    let mut corners = scratch::zeroed(4 * cout * chunk * count);
    let mut pad = Padded::new(tiles);
    for n in (0..g.batch).step_by(chunk) {
        let images = chunk.min(g.batch - n);
        let columns = images * count;
        let (v, m) = (&mut v[..16 * cin * columns], &mut m[..16 * cout * columns]);
        input_transform(&x[n * image..][..images * image], &g, tiles, &mut pad, v);
        m.fill(0.0);
        for (xi, u) in u.iter().enumerate() {
            let v = Mat::rows(&v[xi * cin * columns..][..cin * columns], columns);
            gemm_packed(u, columns, v, &mut m[xi * cout * columns..][..cout * columns], columns);
        }
        output_transform(m, &mut corners, b, cout, oh, ow, tiles, &mut y[n * out_image..][..images * out_image]);
    }
    [v, m, corners].into_iter().for_each(scratch::recycle);
    y
}

/// Whether [`backward`] computes the input gradient of the convolution `g`: one that
/// [`applies`] with padding at most 2 (its gradient is then a padded 3x3 convolution too).
pub fn backward_applies(g: &Window, groups: usize, out_channels: usize) -> bool {
    applies(g, groups, out_channels) && g.padding <= 2
}

/// The filters of the input gradient (`w'[c, o, u, v] = w[o, c, 2 - u, 2 - v]`: transposed and
/// rotated by half a turn), packed as [`pack_weights`] packs a forward's.
pub fn pack_backward_weights(w: &[f32], out_channels: usize, in_channels: usize) -> Vec<PackedA> {
    assert_eq!(w.len(), out_channels * in_channels * 9, "a 3x3 convolution's weights are [Cout, Cin, 3, 3]");
    let mut flipped = vec![0.0f32; w.len()];
    for o in 0..out_channels {
        for c in 0..in_channels {
            let (from, to) = (&w[(o * in_channels + c) * 9..][..9], &mut flipped[(c * out_channels + o) * 9..][..9]);
            for (t, &v) in to.iter_mut().zip(from.iter().rev()) {
                *t = v;
            }
        }
    }
    pack_weights(&flipped, in_channels, out_channels)
}

/// `d_x` of a convolution that [`backward_applies`], given `d_y` and `u_t` from
/// [`pack_backward_weights`].
///
/// With stride 1, `d_x[c, a, b] = sum_{o,u,v} d_y[o, a + p - u, b + p - v] w[o, c, u, v]`;
/// with `u' = 2 - u` that is `sum_{o,u',v'} w'[c, o, u', v'] d_y[o, a + u' - (2 - p), ...]`:
/// the forward convolution of `d_y` with `w'` and padding `2 - p`, whose output is the input's size.
pub fn backward(d_y: &[f32], u_t: &[PackedA], g: Window, out_channels: usize) -> Vec<f32> {
    assert!(backward_applies(&g, 1, out_channels), "the Winograd input gradient does not apply to this convolution");
    let gradient = Window {
        in_channels: out_channels,
        height: g.out_height,
        width: g.out_width,
        padding: 2 - g.padding,
        out_height: g.height,
        out_width: g.width,
        ..g
    };
    forward(d_y, u_t, &vec![0.0; g.in_channels], gradient, g.in_channels)
}

/// Columns (tiles of one or more images) per matrix product, at least.
const COLUMNS: usize = 192;

/// The grid of 2x2 output tiles (the last row or column of tiles half outside an odd output).
#[derive(Clone, Copy)]
struct Tiles {
    rows: usize,
    cols: usize,
}

/// One input channel zero-padded and split into even and odd columns, so that every step of
/// the input transform reads and writes contiguous runs (which the compiler turns into vector
/// code) instead of each tile's four overlapping columns.
struct Padded {
    /// Columns per row of each half: tile `tx` reads padded columns `2tx .. 2tx + 4`, which are
    /// even and odd columns `tx` and `tx + 1`.
    half: usize,
    /// `even[y * half + k]` = input pixel `(y - padding, 2k - padding)`, or 0 outside the image;
    /// `odd` the column after it.
    even: Vec<f32>,
    odd: Vec<f32>,
    /// `B^T` applied down one tile row's four rows: even and odd columns.
    t_even: Vec<f32>,
    t_odd: Vec<f32>,
}

impl Padded {
    fn new(tiles: Tiles) -> Self {
        let (half, rows) = (tiles.cols + 1, 2 * tiles.rows + 2);
        Self { half, even: vec![0.0; rows * half], odd: vec![0.0; rows * half], t_even: vec![0.0; 4 * half], t_odd: vec![0.0; 4 * half] }
    }

    /// Copies one channel in (pixels past the tiles' reach are dropped).
    #[inline(never)]
    fn load(&mut self, channel: &[f32], g: &Window) {
        let half = self.half;
        self.even.fill(0.0);
        self.odd.fill(0.0);
        let rows = self.even.len() / half;
        for (iy, row) in channel.chunks_exact(g.width).enumerate().take(rows.saturating_sub(g.padding)) {
            let y = iy + g.padding;
            let (even, odd) = (&mut self.even[y * half..][..half], &mut self.odd[y * half..][..half]);
            // Input column i lands in padded column i + padding: runs of pairs from the first
            // input column that lands on an even padded column.
            let lead = g.padding % 2;
            if lead == 1 {
                odd[g.padding / 2] = row[0];
            }
            let first = (g.padding + lead) / 2;
            let reach = half.saturating_sub(first);
            let pairs = row[lead.min(row.len())..].chunks_exact(2);
            let tail = pairs.remainder().first().copied();
            let mut n = 0;
            for ((pair, e), o) in pairs.zip(&mut even[first..]).zip(&mut odd[first..]).take(reach) {
                *e = pair[0];
                *o = pair[1];
                n += 1;
            }
            if let (Some(v), Some(e)) = (tail, even.get_mut(first + n)) {
                if n * 2 + lead + 1 == g.width {
                    *e = v;
                }
            }
        }
    }

    /// `B^T` down padded rows `2ty .. 2ty + 4` into `t_even`, `t_odd`.
    fn vertical(&mut self, ty: usize) {
        let half = self.half;
        for (plane, t) in [(&self.even, &mut self.t_even), (&self.odd, &mut self.t_odd)] {
            let r: [&[f32]; 4] = std::array::from_fn(|r| &plane[(2 * ty + r) * half..][..half]);
            let (t0, rest) = t.split_at_mut(half);
            let (t1, rest) = rest.split_at_mut(half);
            let (t2, t3) = rest.split_at_mut(half);
            for q in 0..half {
                t0[q] = r[0][q] - r[2][q];
                t1[q] = r[1][q] + r[2][q];
                t2[q] = r[2][q] - r[1][q];
                t3[q] = r[1][q] - r[3][q];
            }
        }
    }
}

/// `V[xi][c, t] = (B^T d B)[xi]` for the patch `d` of every channel `c` and tile `t` of one
/// image, with `B^T = [[1,0,-1,0], [0,1,1,0], [0,-1,1,0], [0,1,0,-1]]`.
// Out of line (here and below): the profiles then show each transform's share.
#[inline(never)]
fn input_transform(x: &[f32], g: &Window, tiles: Tiles, pad: &mut Padded, v: &mut [f32]) {
    let (plane, count, cin, cols) = (g.height * g.width, tiles.rows * tiles.cols, g.in_channels, tiles.cols);
    let images = x.len() / (cin * plane);
    let (half, columns) = (pad.half, images * count);
    for (c, channel) in x.chunks_exact(plane).enumerate() {
        let (img, c) = (c / cin, c % cin);
        pad.load(channel, g);
        for ty in 0..tiles.rows {
            pad.vertical(ty);
            // B along each tile's four columns: columns 2tx, 2tx+1, 2tx+2, 2tx+3 are even[tx],
            // odd[tx], even[tx+1], odd[tx+1].
            let first = c * columns + img * count + ty * cols;
            for r in 0..4 {
                let (e, o) = (&pad.t_even[r * half..][..half], &pad.t_odd[r * half..][..half]);
                let (e0, e1, o0, o1) = (&e[..cols], &e[1..][..cols], &o[..cols], &o[1..][..cols]);
                let [v0, v1, v2, v3] = quarter(v, 4 * r, cin * columns);
                let (v0, v1, v2, v3) = (&mut v0[first..][..cols], &mut v1[first..][..cols], &mut v2[first..][..cols], &mut v3[first..][..cols]);
                for tx in 0..cols {
                    v0[tx] = e0[tx] - e1[tx];
                    v1[tx] = o0[tx] + e1[tx];
                    v2[tx] = e1[tx] - o0[tx];
                    v3[tx] = o0[tx] - o1[tx];
                }
            }
        }
    }
}

/// The four matrices `xi .. xi + 4` (each `len` long) of a buffer of 16, mutably.
fn quarter(buf: &mut [f32], xi: usize, len: usize) -> [&mut [f32]; 4] {
    let (a, rest) = buf[xi * len..][..4 * len].split_at_mut(len);
    let (b, rest) = rest.split_at_mut(len);
    let (c, d) = rest.split_at_mut(len);
    [a, b, c, d]
}

/// `y[o, 2ty+a, 2tx+b] = bias[o] + (A^T M A)[a, b]` for every tile inside the output, where
/// `M[xi] = m[xi][o, t]` and `A^T = [[1,1,1,0], [0,1,-1,-1]]`.
///
/// The 16 matrices run over `(o, t)` alike, so the transform is one loop over all of them
/// (long and contiguous: vector code), into one run per corner of the tiles; the corners are
/// then interleaved into the output rows.
#[inline(never)]
fn output_transform(m: &[f32], corners: &mut [f32], bias: &[f32], cout: usize, oh: usize, ow: usize, tiles: Tiles, y: &mut [f32]) {
    let (count, cols) = (tiles.rows * tiles.cols, tiles.cols);
    let len = m.len() / 16;
    let columns = len / cout;
    let s: [&[f32]; 16] = std::array::from_fn(|xi| &m[xi * len..][..len]);
    let [tl, tr, bl, br] = quarter(&mut corners[..4 * len], 0, len);
    for j in 0..len {
        // A^T down the columns (rows 0-2 and 1-3 of the 4x4), then A along the rows.
        // (Written out: `[0, 1, 2, 3].map(..)` stays a call per element in the wasm build.)
        let top = [
            s[0][j] + s[4][j] + s[8][j],
            s[1][j] + s[5][j] + s[9][j],
            s[2][j] + s[6][j] + s[10][j],
            s[3][j] + s[7][j] + s[11][j],
        ];
        let bottom = [
            s[4][j] - s[8][j] - s[12][j],
            s[5][j] - s[9][j] - s[13][j],
            s[6][j] - s[10][j] - s[14][j],
            s[7][j] - s[11][j] - s[15][j],
        ];
        tl[j] = top[0] + top[1] + top[2];
        tr[j] = top[1] - top[2] - top[3];
        bl[j] = bottom[0] + bottom[1] + bottom[2];
        br[j] = bottom[1] - bottom[2] - bottom[3];
    }
    for (plane, out) in y.chunks_exact_mut(oh * ow).enumerate() {
        let (img, o) = (plane / cout, plane % cout);
        let b = bias[o];
        for ty in 0..tiles.rows {
            let at = o * columns + img * count + ty * cols;
            for (a, (left, right)) in [(&tl[at..][..cols], &tr[at..][..cols]), (&bl[at..][..cols], &br[at..][..cols])].into_iter().enumerate() {
                let i = 2 * ty + a;
                if i >= oh {
                    break;
                }
                let row = &mut out[i * ow..][..ow];
                let (pairs, last) = row.split_at_mut(ow / 2 * 2);
                for ((pair, &l), &r) in pairs.chunks_exact_mut(2).zip(left).zip(right) {
                    pair[0] = b + l;
                    pair[1] = b + r;
                }
                if let Some(v) = last.first_mut() {
                    *v = b + left[cols - 1];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::backward::conv2d_backward;
    use crate::engine::cpu::layers::conv2d_forward;
    use crate::testing::{fresh_seed, Rng};

    /// Against the direct (im2col) convolution: odd and even sizes, padding 0, 1 and 2 (outputs
    /// smaller than, as large as and larger than the input), one pixel, channels that are not a
    /// multiple of any kernel's tile, batches of 1 and 6; each output within 2e-6 of the sum of
    /// the magnitudes of its products.
    #[test]
    fn equals_the_direct_convolution() {
        let seed = fresh_seed();
        let mut rng = Rng::new(seed);
        // (in channels, out channels, height, width, padding)
        let cases = [(8, 8, 5, 5, 1), (9, 13, 7, 4, 1), (16, 8, 3, 3, 0), (8, 10, 1, 1, 1), (12, 9, 6, 9, 2), (8, 16, 14, 14, 1), (32, 8, 2, 5, 1)];
        for (case, &(cin, cout, h, w, p)) in cases.iter().enumerate() {
            // 1 or 6 images: 14x14 outputs (49 tiles) run as a product of 4 images and one of 2.
            let batch = 1 + 5 * (case % 2);
            let (oh, ow) = (h + 2 * p - 2, w + 2 * p - 2);
            let g = Window { batch, in_channels: cin, height: h, width: w, kernel: 3, stride: 1, padding: p, dilation: 1, out_height: oh, out_width: ow };
            assert!(applies(&g, 1, cout));
            let x: Vec<f32> = (0..batch * cin * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let want = conv2d_forward(&x, &wt, &b, g, cout, 1);
            let got = forward(&x, &pack_weights(&wt, cout, cin), &b, g, cout);
            assert_eq!(got.len(), want.len());
            // Every product is at most 1 in magnitude: the sum of magnitudes is at most 9 Cin + 1.
            let scale = (9 * cin + 1) as f32;
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((a - e).abs() <= 2e-6 * scale, "case {case} (seed {seed}): output {i} is {a}, the direct convolution gives {e}");
            }
        }
    }

    /// The input gradient against the im2col backward (the transposed product and col2im), on
    /// the same cases: a different route to the same sums.
    #[test]
    fn input_gradient_equals_the_direct_backward() {
        let seed = fresh_seed();
        let mut rng = Rng::new(seed);
        let cases = [(8, 8, 5, 5, 1), (9, 13, 7, 4, 1), (16, 8, 3, 3, 0), (8, 10, 1, 1, 1), (12, 9, 6, 9, 2), (8, 16, 14, 14, 1), (32, 8, 3, 6, 0)];
        for (case, &(cin, cout, h, w, p)) in cases.iter().enumerate() {
            let batch = 1 + 5 * (case % 2);
            let (oh, ow) = (h + 2 * p - 2, w + 2 * p - 2);
            let g = Window { batch, in_channels: cin, height: h, width: w, kernel: 3, stride: 1, padding: p, dilation: 1, out_height: oh, out_width: ow };
            assert!(backward_applies(&g, 1, cout));
            let d_y: Vec<f32> = (0..batch * cout * oh * ow).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let want = conv2d_backward(&d_y, &wt, g, cout, 1);
            let got = backward(&d_y, &pack_backward_weights(&wt, cout, cin), g, cout);
            assert_eq!(got.len(), want.len());
            let scale = (9 * cout) as f32;
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((a - e).abs() <= 2e-6 * scale, "case {case} (seed {seed}): d_x {i} is {a}, the direct backward gives {e}");
            }
        }
        let g = Window { batch: 1, in_channels: 8, height: 4, width: 4, kernel: 3, stride: 1, padding: 3, dilation: 1, out_height: 8, out_width: 8 };
        assert!(applies(&g, 1, 8) && !backward_applies(&g, 1, 8), "padding 3: the gradient would crop");
    }

    #[test]
    fn stays_off_where_it_does_not_pay_or_does_not_apply() {
        let g = Window { batch: 1, in_channels: 16, height: 8, width: 8, kernel: 3, stride: 1, padding: 1, dilation: 1, out_height: 8, out_width: 8 };
        assert!(applies(&g, 1, 16));
        assert!(!applies(&Window { in_channels: 3, ..g }, 1, 16), "a colour input");
        assert!(!applies(&g, 1, 4), "four outputs");
        assert!(!applies(&g, 2, 16), "groups");
        assert!(!applies(&Window { stride: 2, out_height: 4, out_width: 4, ..g }, 1, 16), "stride 2");
        assert!(!applies(&Window { dilation: 2, out_height: 6, out_width: 6, ..g }, 1, 16), "dilation");
        assert!(!applies(&Window { kernel: 5, out_height: 6, out_width: 6, ..g }, 1, 16), "5x5");
    }
}
