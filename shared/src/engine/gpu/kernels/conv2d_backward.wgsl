// Gradient at a convolution's input, gathered (no atomics): one invocation per input value,
// d_x[n,c,r,s] = sum over (o,u,v) with r = i*st+u*d-p and s = j*st+v*d-p of w[o,c,u,v] * d_y[n,o,i,j],
// o running over the output channels of c's group (all of them when groups = 1).
struct Params {
    batch: u32, in_channels: u32, height: u32, width: u32,
    out_channels: u32, out_height: u32, out_width: u32, kernel: u32,
    stride: u32, padding: u32, groups: u32, dilation: u32,
}

@group(0) @binding(0) var<storage, read> d_y: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn conv2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.batch * p.in_channels * p.height * p.width || idx >= arrayLength(&d_x)) { return; }
    let s = idx % p.width;
    let r = (idx / p.width) % p.height;
    let c = (idx / (p.width * p.height)) % p.in_channels;
    let n = idx / (p.width * p.height * p.in_channels);
    var acc = 0.0;
    let per_group = p.in_channels / p.groups;
    let outs = p.out_channels / p.groups;
    let grp = c / per_group;
    // Without dilation only every stride-th tap reaches (r, s): start at the first of them.
    let dense = p.dilation == 1u;
    let tap_step = select(1u, p.stride, dense);
    let u_first = select(0u, (r + p.padding) % p.stride, dense);
    let v_first = select(0u, (s + p.padding) % p.stride, dense);
    for (var o = grp * outs; o < (grp + 1u) * outs; o++) {
        for (var u = u_first; u < p.kernel; u += tap_step) {
            // Output row i with i*stride + u*dilation - padding = r.
            let ti = i32(r + p.padding) - i32(u * p.dilation);
            if (ti < 0 || ti % i32(p.stride) != 0) { continue; }
            let i = u32(ti) / p.stride;
            if (i >= p.out_height) { continue; }
            for (var v = v_first; v < p.kernel; v += tap_step) {
                let tj = i32(s + p.padding) - i32(v * p.dilation);
                if (tj < 0 || tj % i32(p.stride) != 0) { continue; }
                let j = u32(tj) / p.stride;
                if (j >= p.out_width) { continue; }
                acc += w[((o * per_group + c % per_group) * p.kernel + u) * p.kernel + v]
                     * d_y[((n * p.out_channels + o) * p.out_height + i) * p.out_width + j];
            }
        }
    }
    d_x[idx] = acc;
}
