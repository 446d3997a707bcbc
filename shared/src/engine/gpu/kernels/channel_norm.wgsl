// Layer normalisation over the channels of each pixel, one invocation per (image, pixel), `plane`
// pixels per channel plane, `pixels` = images x plane:
//   channel_norm_forward:  y[c] = (x[c] - m) r w[c] + b[c],  m = mean_c x[c],
//                          r = 1 / sqrt(mean_c (x[c] - m)^2 + eps)
//   channel_norm_backward: d_x[c] = r (g[c] - mean_c g - h[c] mean_c (g h)),  g = d_y w, h = (x - m) r
// x is binding 1 in both; the forward binds weight at 0 and bias at 2, the backward d_y at 0
// and weight at 2.
struct Params { pixels: u32, channels: u32, plane: u32, eps_bits: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// The first value of pixel `idx` (its channels are `plane` apart), and the mean and
// 1 / sqrt(variance + eps) of x over those channels.
struct Moments { base: u32, mean: f32, rstd: f32 }

fn moments(idx: u32) -> Moments {
    let base = (idx / p.plane) * p.channels * p.plane + idx % p.plane;
    let n = f32(p.channels);
    var mean = 0.0;
    for (var k = 0u; k < p.channels; k++) { mean += x[base + k * p.plane]; }
    mean /= n;
    var v = 0.0;
    for (var k = 0u; k < p.channels; k++) { let d = x[base + k * p.plane] - mean; v += d * d; }
    return Moments(base, mean, 1.0 / sqrt(v / n + bitcast<f32>(p.eps_bits)));
}

@compute @workgroup_size(64)
fn channel_norm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    // a = weight, c = bias.
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.pixels) { return; }
    let m = moments(idx);
    for (var k = 0u; k < p.channels; k++) {
        let at = m.base + k * p.plane;
        if (at < arrayLength(&out)) { out[at] = (x[at] - m.mean) * m.rstd * a[k] + c[k]; }
    }
}

@compute @workgroup_size(64)
fn channel_norm_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    // a = d_y, c = weight.
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.pixels) { return; }
    let m = moments(idx);
    let n = f32(p.channels);
    var mean_g = 0.0;
    var mean_gh = 0.0;
    for (var k = 0u; k < p.channels; k++) {
        let at = m.base + k * p.plane;
        let g = a[at] * c[k];
        mean_g += g;
        mean_gh += g * (x[at] - m.mean) * m.rstd;
    }
    mean_g /= n;
    mean_gh /= n;
    for (var k = 0u; k < p.channels; k++) {
        let at = m.base + k * p.plane;
        if (at < arrayLength(&out)) { out[at] = m.rstd * (a[at] * c[k] - mean_g - (x[at] - m.mean) * m.rstd * mean_gh); }
    }
}
