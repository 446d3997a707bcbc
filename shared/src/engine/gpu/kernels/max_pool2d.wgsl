// y[n,c,i,j] = max_{u,v} x[n,c, i*s+u-p, j*s+v-p]; padding never wins.
struct Params {
    planes: u32, height: u32, width: u32, out_height: u32,
    out_width: u32, kernel: u32, stride: u32, padding: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn max_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.planes * p.out_height * p.out_width || idx >= arrayLength(&y)) { return; }
    let j = idx % p.out_width;
    let i = (idx / p.out_width) % p.out_height;
    let plane = idx / (p.out_width * p.out_height);
    // The first in-bounds value seeds the max (validation guarantees one exists): a literal
    // like -3.40282347e38 is rejected by Tint as out of f32 range.
    var best = 0.0;
    var seeded = false;
    for (var u = 0u; u < p.kernel; u++) {
        let row = i32(i * p.stride + u) - i32(p.padding);
        if (row < 0 || row >= i32(p.height)) { continue; }
        for (var v = 0u; v < p.kernel; v++) {
            let col = i32(j * p.stride + v) - i32(p.padding);
            if (col < 0 || col >= i32(p.width)) { continue; }
            let v = x[(plane * p.height + u32(row)) * p.width + u32(col)];
            if (!seeded || v > best) { best = v; seeded = true; }
        }
    }
    y[idx] = best;
}
