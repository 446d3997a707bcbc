// hard_sigmoid_forward:  y = min(max(alpha x + beta, 0), 1)
// hard_sigmoid_backward: d_x = 0 < alpha x + beta < 1 ? alpha d_y : 0     (x = the layer's input)
// hard_swish_forward:    y = x min(max(x + 3, 0), 6) / 6
// hard_swish_backward:   d_x = x < -3 ? 0 : (x <= 3 ? d_y (x / 3 + 1/2) : d_y)
// alpha and beta travel as the bits of f32 values in the u32 parameters.
struct Params { len: u32, alpha_bits: u32, beta_bits: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> d_y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn hard_sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = min(max(bitcast<f32>(p.alpha_bits) * x[idx] + bitcast<f32>(p.beta_bits), 0.0), 1.0);
}

@compute @workgroup_size(64)
fn hard_sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let alpha = bitcast<f32>(p.alpha_bits);
    let z = alpha * x[idx] + bitcast<f32>(p.beta_bits);
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
