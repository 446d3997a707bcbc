// leaky_relu_forward:  y = x > 0 ? x : alpha x
// leaky_relu_backward: d_x = x > 0 ? d_y : alpha d_y   (x = the layer's input)
// alpha travels as the bits of an f32 in the u32 parameters.
struct Params { len: u32, alpha_bits: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> d_y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn leaky_relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    out[idx] = select(bitcast<f32>(p.alpha_bits) * v, v, v > 0.0);
}

@compute @workgroup_size(64)
fn leaky_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = select(bitcast<f32>(p.alpha_bits) * d_y[idx], d_y[idx], x[idx] > 0.0);
}
