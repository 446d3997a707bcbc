// clip_forward:  y = min(max(x, lo), hi)
// clip_backward: d_x = lo < x < hi ? d_y : 0   (x = the clip's input)
// lo and hi travel as the bits of f32 values in the u32 parameters.
struct Params { len: u32, lo_bits: u32, hi_bits: u32, _pad: u32 }

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
    out[idx] = min(max(x[idx], bitcast<f32>(p.lo_bits)), bitcast<f32>(p.hi_bits));
}

@compute @workgroup_size(64)
fn clip_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    let v = x[idx];
    out[idx] = select(0.0, d_y[idx], v > bitcast<f32>(p.lo_bits) && v < bitcast<f32>(p.hi_bits));
}
