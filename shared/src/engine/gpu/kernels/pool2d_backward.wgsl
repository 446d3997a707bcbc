// Gradients at a pooling layer's input, gathered: one invocation per input value visits every
// window that contains it.
//   max_pool2d_backward: a window's gradient goes to its first maximum in row-major order
//                        (libtorch's tie rule), so the window's argmax is recomputed here;
//   avg_pool2d_backward: each window spreads d_y / k^2 over its k x k positions.
struct Params {
    planes: u32, height: u32, width: u32, out_height: u32,
    out_width: u32, kernel: u32, stride: u32, padding: u32,
}

@group(0) @binding(0) var<storage, read> d_y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Flat index (within the plane) of the first maximum of window (i, j).
fn window_argmax(plane: u32, i: u32, j: u32) -> u32 {
    var best = 0.0;
    var at = 0u;
    var seeded = false;
    for (var u = 0u; u < p.kernel; u++) {
        let row = i32(i * p.stride + u) - i32(p.padding);
        if (row < 0 || row >= i32(p.height)) { continue; }
        for (var v = 0u; v < p.kernel; v++) {
            let col = i32(j * p.stride + v) - i32(p.padding);
            if (col < 0 || col >= i32(p.width)) { continue; }
            let k = u32(row) * p.width + u32(col);
            let value = x[plane * p.height * p.width + k];
            if (!seeded || value > best) { best = value; at = k; seeded = true; }
        }
    }
    return at;
}

// The range of window indices along one axis whose window covers position `pos`.
fn covering(pos: u32, out_size: u32) -> vec2<u32> {
    let hi_t = i32(pos + p.padding);
    let lo_t = hi_t - i32(p.kernel) + 1;
    var lo = 0u;
    if (lo_t > 0) { lo = (u32(lo_t) + p.stride - 1u) / p.stride; }
    let hi = min(u32(hi_t) / p.stride + 1u, out_size);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(64)
fn max_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.planes * p.height * p.width || idx >= arrayLength(&d_x)) { return; }
    let k = idx % (p.height * p.width);
    let plane = idx / (p.height * p.width);
    let rows = covering(k / p.width, p.out_height);
    let cols = covering(k % p.width, p.out_width);
    var acc = 0.0;
    for (var i = rows.x; i < rows.y; i++) {
        for (var j = cols.x; j < cols.y; j++) {
            if (window_argmax(plane, i, j) == k) {
                acc += d_y[(plane * p.out_height + i) * p.out_width + j];
            }
        }
    }
    d_x[idx] = acc;
}

@compute @workgroup_size(64)
fn avg_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.planes * p.height * p.width || idx >= arrayLength(&d_x)) { return; }
    let k = idx % (p.height * p.width);
    let plane = idx / (p.height * p.width);
    let rows = covering(k / p.width, p.out_height);
    let cols = covering(k % p.width, p.out_width);
    var acc = 0.0;
    for (var i = rows.x; i < rows.y; i++) {
        for (var j = cols.x; j < cols.y; j++) {
            acc += d_y[(plane * p.out_height + i) * p.out_width + j];
        }
    }
    d_x[idx] = acc * (1.0 / f32(p.kernel * p.kernel));
}
