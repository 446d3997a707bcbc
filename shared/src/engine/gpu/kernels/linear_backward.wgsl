// Gradient at a linear layer's input: d_x[n,i] = sum_o d_y[n,o] * w[o,i].
struct Params { batch: u32, in_features: u32, out_features: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> d_y: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn linear_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.batch * p.in_features || idx >= arrayLength(&d_x)) { return; }
    let i = idx % p.in_features;
    let n = idx / p.in_features;
    var acc = 0.0;
    for (var o = 0u; o < p.out_features; o++) {
        acc += d_y[n * p.out_features + o] * w[o * p.in_features + i];
    }
    d_x[idx] = acc;
}
