// Channel concatenation, one input ("part") per dispatch; per image the output holds `total`
// values and the part `part` of them from `offset` on:
//   concat_forward:  y[n*total + offset + i] = part[n*part + i]    (one invocation per part value)
//   concat_backward: d_part[n*part + i] = d_y[n*total + offset + i]
struct Params { len: u32, part: u32, total: u32, offset: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn concat_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len) { return; }
    let at = (idx / p.part) * p.total + p.offset + idx % p.part;
    if (at >= arrayLength(&dst) || idx >= arrayLength(&src)) { return; }
    dst[at] = src[idx];
}

@compute @workgroup_size(64)
fn concat_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&dst)) { return; }
    let at = (idx / p.part) * p.total + p.offset + idx % p.part;
    if (at >= arrayLength(&src)) { return; }
    dst[idx] = src[at];
}
