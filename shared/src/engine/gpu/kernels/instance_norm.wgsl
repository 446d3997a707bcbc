// Instance normalisation: every channel plane of every image normalised over its `plane`
// pixels, one invocation per (image, channel) row, `rows` = images x channels:
//   instance_norm_forward:  y[p] = (x[p] - m) r w[c] + b[c],  m = mean_p x[p],
//                           r = 1 / sqrt(mean_p (x[p] - m)^2 + eps)
//   instance_norm_backward: d_x[p] = r w[c] (d_y[p] - mean_p d_y - h[p] mean_p (d_y h)),  h = (x - m) r
// x is binding 1 in both; the forward binds weight at 0 and bias at 2, the backward d_y at 0
// and weight at 2.
struct Params { rows: u32, channels: u32, plane: u32, eps_bits: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// The first value of row `row`, and the mean and 1 / sqrt(variance + eps) of x over the row.
struct Moments { base: u32, mean: f32, rstd: f32 }

fn moments(row: u32) -> Moments {
    let base = row * p.plane;
    let n = f32(p.plane);
    var mean = 0.0;
    for (var k = 0u; k < p.plane; k++) { mean += x[base + k]; }
    mean /= n;
    var v = 0.0;
    for (var k = 0u; k < p.plane; k++) { let d = x[base + k] - mean; v += d * d; }
    return Moments(base, mean, 1.0 / sqrt(v / n + bitcast<f32>(p.eps_bits)));
}

@compute @workgroup_size(64)
fn instance_norm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    // a = weight, c = bias.
    let row = gid.x + gid.y * groups.x * 64u;
    if (row >= p.rows) { return; }
    let m = moments(row);
    let channel = row % p.channels;
    let scale = m.rstd * a[channel];
    for (var k = 0u; k < p.plane; k++) {
        let at = m.base + k;
        if (at < arrayLength(&out)) { out[at] = (x[at] - m.mean) * scale + c[channel]; }
    }
}

@compute @workgroup_size(64)
fn instance_norm_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    // a = d_y, c = weight.
    let row = gid.x + gid.y * groups.x * 64u;
    if (row >= p.rows) { return; }
    let m = moments(row);
    let n = f32(p.plane);
    var mean_g = 0.0;
    var mean_gh = 0.0;
    for (var k = 0u; k < p.plane; k++) {
        let at = m.base + k;
        mean_g += a[at];
        mean_gh += a[at] * (x[at] - m.mean) * m.rstd;
    }
    mean_g /= n;
    mean_gh /= n;
    let scale = m.rstd * c[row % p.channels];
    for (var k = 0u; k < p.plane; k++) {
        let at = m.base + k;
        if (at < arrayLength(&out)) { out[at] = scale * (a[at] - mean_g - (x[at] - m.mean) * m.rstd * mean_gh); }
    }
}
