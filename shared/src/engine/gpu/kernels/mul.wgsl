// y[i] = a[i] * b[i / plane]: plane 1 for equal shapes, H*W for a map times a per-channel vector.
//   mul_forward:    y[i] = a[i] * b[i / plane]                          (one invocation per y value)
//   mul_backward_a: d_a[i] = d_y[i] * b[i / plane]                      (one per a value)
//   mul_backward_b: d_b[m] = sum_{j < plane} d_y[m*plane + j] * a[m*plane + j]   (one per b value)
struct Params { len: u32, plane: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> d_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn mul_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = a[idx] * b[idx / p.plane];
}

@compute @workgroup_size(64)
fn mul_backward_a(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&out)) { return; }
    out[idx] = d_y[idx] * b[idx / p.plane];
}

@compute @workgroup_size(64)
fn mul_backward_b(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let m = index(gid, groups);
    if (m >= p.len || m >= arrayLength(&out)) { return; }
    var acc = 0.0;
    for (var j = 0u; j < p.plane; j++) {
        acc += d_y[m * p.plane + j] * a[m * p.plane + j];
    }
    out[m] = acc;
}
