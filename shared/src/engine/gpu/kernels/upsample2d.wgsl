// Nearest-neighbour upsampling by an integer scale, the same sums as `upsample2d_forward` and
// `upsample2d_backward` in engine/cpu (planes = batch x channels):
//   upsample2d_forward:  y[p, i, j] = x[p, i / s, j / s]                   (one invocation per output value)
//   upsample2d_backward: d_x[p, i, j] = sum of d_y over the s x s block of (i, j)   (one per input value)
struct Params { planes: u32, height: u32, width: u32, scale: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn upsample2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    let oh = p.height * p.scale;
    let ow = p.width * p.scale;
    if (idx >= p.planes * oh * ow || idx >= arrayLength(&dst)) { return; }
    let j = idx % ow;
    let i = (idx / ow) % oh;
    let plane = idx / (ow * oh);
    let at = (plane * p.height + i / p.scale) * p.width + j / p.scale;
    if (at >= arrayLength(&src)) { return; }
    dst[idx] = src[at];
}

@compute @workgroup_size(64)
fn upsample2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.planes * p.height * p.width || idx >= arrayLength(&dst)) { return; }
    let c = idx % p.width;
    let r = (idx / p.width) % p.height;
    let plane = idx / (p.width * p.height);
    let ow = p.width * p.scale;
    var sum = 0.0;
    for (var u = 0u; u < p.scale; u++) {
        let row = (plane * p.height * p.scale + r * p.scale + u) * ow + c * p.scale;
        for (var v = 0u; v < p.scale; v++) {
            if (row + v < arrayLength(&src)) { sum += src[row + v]; }
        }
    }
    dst[idx] = sum;
}
