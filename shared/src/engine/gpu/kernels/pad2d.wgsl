// Zero padding of planes (batch x channels of them), the same loops as `pad2d_forward` and
// `pad2d_backward` in engine/cpu:
//   pad2d_forward:  y[p, i, j] = x[p, i - top, j - left] inside, 0 outside   (one invocation per output value)
//   pad2d_backward: d_x[p, i, j] = d_y[p, top + i, left + j]                 (one invocation per input value)
struct Params { planes: u32, height: u32, width: u32, top: u32, left: u32, out_height: u32, out_width: u32, len: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn pad2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&dst)) { return; }
    let j = idx % p.out_width;
    let i = (idx / p.out_width) % p.out_height;
    let plane = idx / (p.out_width * p.out_height);
    var v = 0.0;
    // Unsigned: a row above `top` wraps to a large value and fails the bound like one below.
    let r = i - p.top;
    let c = j - p.left;
    if (i >= p.top && r < p.height && j >= p.left && c < p.width) {
        let at = (plane * p.height + r) * p.width + c;
        if (at < arrayLength(&src)) { v = src[at]; }
    }
    dst[idx] = v;
}

@compute @workgroup_size(64)
fn pad2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&dst)) { return; }
    let c = idx % p.width;
    let r = (idx / p.width) % p.height;
    let plane = idx / (p.width * p.height);
    let at = (plane * p.out_height + p.top + r) * p.out_width + p.left + c;
    if (at >= arrayLength(&src)) { return; }
    dst[idx] = src[at];
}
