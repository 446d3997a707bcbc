// Pointwise activations, one invocation per value; x is the layer's input (binding 1), d_y the
// gradient at its output (binding 0). Constants travel as the bits of f32 values, a and b:
//   clip_forward:          y = min(max(x, a), b)
//   clip_backward:         d_x = a < x < b ? d_y : 0
//   sigmoid_forward:       y = 1 / (1 + exp(-x))
//   sigmoid_backward:      d_x = d_y * y * (1 - y)      (here binding 1 holds the output y)
//   leaky_relu_forward:    y = x > 0 ? x : a x
//   leaky_relu_backward:   d_x = x > 0 ? d_y : a d_y
//   hard_sigmoid_forward:  y = min(max(a x + b, 0), 1)
//   hard_sigmoid_backward: d_x = 0 < a x + b < 1 ? a d_y : 0
//   hard_swish_forward:    y = x min(max(x + 3, 0), 6) / 6
//   hard_swish_backward:   d_x = x < -3 ? 0 : (x <= 3 ? d_y (x / 3 + 1/2) : d_y)
//   gelu_forward:          y = x (1 + erf(x / sqrt(2))) / 2
//   gelu_backward:         d_x = d_y ((1 + erf(x / sqrt(2))) / 2 + x exp(-x^2 / 2) / sqrt(2 pi))
struct Params { len: u32, a_bits: u32, b_bits: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> d_y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn clip_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = min(max(x[idx], bitcast<f32>(p.a_bits)), bitcast<f32>(p.b_bits));
}

@compute @workgroup_size(64)
fn clip_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    out[idx] = select(0.0, d_y[idx], v > bitcast<f32>(p.a_bits) && v < bitcast<f32>(p.b_bits));
}

@compute @workgroup_size(64)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = 1.0 / (1.0 + exp(-x[idx]));
}

@compute @workgroup_size(64)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let y = x[idx];
    out[idx] = d_y[idx] * y * (1.0 - y);
}

@compute @workgroup_size(64)
fn leaky_relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    out[idx] = select(bitcast<f32>(p.a_bits) * v, v, v > 0.0);
}

@compute @workgroup_size(64)
fn leaky_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = select(bitcast<f32>(p.a_bits) * d_y[idx], d_y[idx], x[idx] > 0.0);
}

@compute @workgroup_size(64)
fn hard_sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = min(max(bitcast<f32>(p.a_bits) * x[idx] + bitcast<f32>(p.b_bits), 0.0), 1.0);
}

@compute @workgroup_size(64)
fn hard_sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let alpha = bitcast<f32>(p.a_bits);
    let z = alpha * x[idx] + bitcast<f32>(p.b_bits);
    out[idx] = select(0.0, alpha * d_y[idx], z > 0.0 && z < 1.0);
}

@compute @workgroup_size(64)
fn hard_swish_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    out[idx] = v * min(max(v + 3.0, 0.0), 6.0) / 6.0;
}

@compute @workgroup_size(64)
fn hard_swish_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    let g = d_y[idx];
    out[idx] = select(select(g, g * (v / 3.0 + 0.5), v <= 3.0), 0.0, v < -3.0);
}

// erf(x) to about 1.2e-7 relative: the CPU engine's fit (Numerical Recipes' erfc), WGSL has none.
fn erf(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.2655122
        + t * (1.0000237 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.1352040 + t * (1.4885159 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * exp(poly);
    return select(erfc - 1.0, 1.0 - erfc, x >= 0.0);
}

@compute @workgroup_size(64)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    out[idx] = 0.5 * v * (1.0 + erf(v * 0.70710678));
}

@compute @workgroup_size(64)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    out[idx] = d_y[idx] * (0.5 * (1.0 + erf(v * 0.70710678)) + v * 0.39894228 * exp(-0.5 * v * v));
}
