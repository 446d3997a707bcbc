// y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * x[n, g*Cg + c, i*s+u*d-p, j*s+v*d-p], zero padding,
// where c runs over the Cg = Cin / groups input channels of o's group g = o / (Cout / groups).
// One invocation per output value; the sum runs in the CPU reference's order (c, u, v).
struct Params {
    batch: u32, in_channels: u32, height: u32, width: u32,
    out_channels: u32, out_height: u32, out_width: u32, kernel: u32,
    stride: u32, padding: u32, groups: u32, dilation: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.batch * p.out_channels * p.out_height * p.out_width || idx >= arrayLength(&y)) { return; }
    let j = idx % p.out_width;
    let i = (idx / p.out_width) % p.out_height;
    let o = (idx / (p.out_width * p.out_height)) % p.out_channels;
    let n = idx / (p.out_width * p.out_height * p.out_channels);
    var acc = b[o];
    let per_group = p.in_channels / p.groups;
    let first = (o / (p.out_channels / p.groups)) * per_group;
    for (var c = 0u; c < per_group; c++) {
        for (var u = 0u; u < p.kernel; u++) {
            let row = i32(i * p.stride + u * p.dilation) - i32(p.padding);
            if (row < 0 || row >= i32(p.height)) { continue; }
            for (var v = 0u; v < p.kernel; v++) {
                let col = i32(j * p.stride + v * p.dilation) - i32(p.padding);
                if (col < 0 || col >= i32(p.width)) { continue; }
                let xv = x[((n * p.in_channels + first + c) * p.height + u32(row)) * p.width + u32(col)];
                acc += w[((o * per_group + c) * p.kernel + u) * p.kernel + v] * xv;
            }
        }
    }
    y[idx] = acc;
}
