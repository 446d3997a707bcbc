// y[n,c,i,j] = (1/k^2) sum_{u,v} x[n,c, i*s+u-p, j*s+v-p]; zero padding counts in the divisor.
struct Params {
    planes: u32, height: u32, width: u32, out_height: u32,
    out_width: u32, kernel: u32, stride: u32, padding: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn avg_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.planes * p.out_height * p.out_width || idx >= arrayLength(&y)) { return; }
    let j = idx % p.out_width;
    let i = (idx / p.out_width) % p.out_height;
    let plane = idx / (p.out_width * p.out_height);
    var sum = 0.0;
    for (var u = 0u; u < p.kernel; u++) {
        let row = i32(i * p.stride + u) - i32(p.padding);
        if (row < 0 || row >= i32(p.height)) { continue; }
        for (var v = 0u; v < p.kernel; v++) {
            let col = i32(j * p.stride + v) - i32(p.padding);
            if (col < 0 || col >= i32(p.width)) { continue; }
            sum += x[(plane * p.height + u32(row)) * p.width + u32(col)];
        }
    }
    y[idx] = sum * (1.0 / f32(p.kernel * p.kernel));
}
