//! The CPU reference layers against answers worked out by hand.

use advlens_shared::engine::cpu::layers::*;

fn window(batch: usize, c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> Window {
    Window {
        batch,
        in_channels: c,
        height: h,
        width: w,
        kernel: k,
        stride: s,
        padding: p,
        dilation: 1,
        out_height: (h + 2 * p - k) / s + 1,
        out_width: (w + 2 * p - k) / s + 1,
    }
}

#[test]
fn conv2d_with_padding_matches_hand_computation() {
    // x = [[1,2],[3,4]], 3x3 kernel of ones, padding 1: each output sums its 3x3 neighbourhood.
    let y = conv2d_forward(&[1., 2., 3., 4.], &[1.0; 9], &[0.5], window(1, 1, 2, 2, 3, 1, 1), 1, 1);
    assert_eq!(y, vec![10.5, 10.5, 10.5, 10.5]);
    // A centre-only kernel is the identity; stride 2 picks every other pixel.
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let mut k = [0.0; 9];
    k[4] = 1.0;
    assert_eq!(conv2d_forward(&x, &k, &[0.0], window(1, 1, 4, 4, 3, 2, 1), 1, 1), vec![0., 2., 8., 10.]);
}

#[test]
fn conv2d_sums_over_input_channels() {
    // Two channels, 1x1 kernel weights [2, -1]: y = 2 x0 - x1 + 1.
    let y = conv2d_forward(&[1., 2., 10., 20.], &[2.0, -1.0], &[1.0], window(1, 2, 1, 2, 1, 1, 0), 1, 1);
    assert_eq!(y, vec![2. - 10. + 1., 4. - 20. + 1.]);
}

#[test]
fn max_pool_ignores_padding_and_takes_window_maxima() {
    let x = [-5., -1., -3., -2.];
    assert_eq!(max_pool2d_forward(&x, window(1, 1, 2, 2, 2, 2, 0)), vec![-1.]);
    // With padding 1 and stride 1 a 2x2 window sees padding, which must never win over negatives.
    assert_eq!(max_pool2d_forward(&x, window(1, 1, 2, 2, 2, 1, 1)), vec![-5., -1., -1., -3., -1., -1., -3., -2., -2.]);
}

#[test]
fn linear_relu_and_normalize() {
    assert_eq!(linear_forward(&[1., 2., 3.], &[1., 0., -1., 0.5, 0.5, 0.5], &[0., 1.], 1, 3, 2), vec![-2., 4.]);
    assert_eq!(relu_forward(&[-1., 0., 2.]), vec![0., 0., 2.]);
    assert_eq!(normalize_forward(&[0.5, 1.0, 0.0, 0.25], 1, &[0.5, 0.0], &[0.5, 0.25], 2), vec![0., 1., 0., 1.]);
}

#[test]
fn dilated_conv_reads_taps_that_far_apart() {
    // A 2x2 kernel of ones with dilation 2 over 1..9 reads the four corners of the 3x3 image.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let g = Window { dilation: 2, out_height: 1, out_width: 1, ..window(1, 1, 3, 3, 2, 1, 0) };
    assert_eq!(conv2d_forward(&x, &[1.0; 4], &[0.0], g, 1, 1), vec![1. + 3. + 7. + 9.]);
    // With padding 2 the output is 5x5: its centre still reads the four corners, its corner
    // (0,0) reads x(-2,-2), x(-2,0), x(0,-2) (padding) and x(0,0) = 1, output (1,1) only x(1,1) = 5.
    let g = Window { dilation: 2, padding: 2, out_height: 5, out_width: 5, ..window(1, 1, 3, 3, 2, 1, 0) };
    let y = conv2d_forward(&x, &[1.0; 4], &[0.0], g, 1, 1);
    assert_eq!((y[2 * 5 + 2], y[0], y[4 * 5 + 4], y[5 + 1]), (20.0, 1.0, 9.0, 5.0));
    // Its gradient puts each output's weight back on the pixels it read.
    let d_x = advlens_shared::engine::cpu::backward::conv2d_backward(&[1.0], &[1.0, 2.0, 3.0, 4.0], Window { dilation: 2, out_height: 1, out_width: 1, ..window(1, 1, 3, 3, 2, 1, 0) }, 1, 1);
    assert_eq!(d_x, vec![1., 0., 2., 0., 0., 0., 3., 0., 4.]);
}

#[test]
fn sigmoid_leaky_relu_and_concat() {
    assert_eq!(sigmoid_forward(&[0.0, f32::INFINITY]), vec![0.5, 1.0]);
    assert_eq!(leaky_relu_forward(&[-2.0, 0.0, 3.0], 0.1), vec![-0.2, 0.0, 3.0]);
    use advlens_shared::engine::cpu::backward::{concat_backward, leaky_relu_backward, sigmoid_backward};
    assert_eq!(sigmoid_backward(&[0.5], &[2.0]), vec![0.5]);
    assert_eq!(leaky_relu_backward(&[-1.0, 0.0, 1.0], &[1.0, 1.0, 1.0], 0.25), vec![0.25, 0.25, 1.0]);
    // Two images; part a has 1 value per image, part b 2.
    let y = concat_forward(&[&[1.0, 2.0], &[3.0, 4.0, 5.0, 6.0]], &[1, 2], 2);
    assert_eq!(y, vec![1., 3., 4., 2., 5., 6.]);
    assert_eq!(concat_backward(&y, &[1, 2], 2), vec![vec![1., 2.], vec![3., 4., 5., 6.]]);
}

/// Ties (common after a ReLU) send the gradient to the first maximum in row-major order, as
/// libtorch does — in the 2x2 stride-2 path, the general unpadded path and the padded path.
#[test]
fn max_pool_backward_gives_ties_to_the_first_maximum() {
    use advlens_shared::engine::cpu::backward::max_pool2d_backward;
    // One 2x4 plane, two 2x2 windows: [0 0 | 1 5] over [0 0 | 5 2]: the left window is all ties
    // (top-left wins), the right one ties at 5 (top-right before bottom-left).
    let x = [0., 0., 1., 5., 0., 0., 5., 2.];
    let d = max_pool2d_backward(&x, &[3., 7.], window(1, 1, 2, 4, 2, 2, 0));
    assert_eq!(d, vec![3., 0., 0., 7., 0., 0., 0., 0.]);
    // Stride 1 (overlapping windows, the general path): columns 0-1 all tie (top-left), columns
    // 1-2 peak at the bottom 5, columns 2-3 tie at 5 (top-right first).
    let d = max_pool2d_backward(&x, &[1., 2., 4.], window(1, 1, 2, 4, 2, 1, 0));
    assert_eq!(d, vec![1., 0., 0., 4., 0., 0., 2., 0.]);
    // Padding 1 with a 2x2 window, stride 2: the padded path, same rule.
    let d = max_pool2d_backward(&[0., 0., 0., 0.], &[1., 2., 3., 4.], window(1, 1, 2, 2, 2, 2, 1));
    assert_eq!(d, vec![1., 2., 3., 4.]);
}

/// The 2x2 stride-2 window has its own loop (four outputs per vector step in wasm): against
/// the maximum written out, at widths around the vector step, with NaN and -inf inputs.
#[test]
fn max_pool_2x2_takes_each_windows_maximum_and_nan_never_wins() {
    for width in [2, 6, 8, 10, 16, 18] {
        let height = 4;
        let x: Vec<f32> = (0..height * width)
            .map(|i| match i % 7 {
                3 => f32::NAN,
                5 => f32::NEG_INFINITY,
                k => ((i * 37) % 11) as f32 - 5.0 + k as f32 * 0.25,
            })
            .collect();
        let got = max_pool2d_forward(&x, window(1, 1, height, width, 2, 2, 0));
        for i in 0..height / 2 {
            for j in 0..width / 2 {
                let taps = [(2 * i, 2 * j), (2 * i, 2 * j + 1), (2 * i + 1, 2 * j), (2 * i + 1, 2 * j + 1)];
                let want = taps.iter().map(|&(r, c)| x[r * width + c]).filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(got[i * width / 2 + j], want, "width {width}, output ({i}, {j})");
            }
        }
    }
}
