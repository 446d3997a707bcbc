// y[n,o] = b[o] + sum_i w[o,i] * x[n,i].
struct Params { batch: u32, in_features: u32, out_features: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.batch * p.out_features || idx >= arrayLength(&y)) { return; }
    let o = idx % p.out_features;
    let n = idx / p.out_features;
    var acc = 0.0;
    for (var i = 0u; i < p.in_features; i++) {
        acc += w[o * p.in_features + i] * x[n * p.in_features + i];
    }
    y[idx] = b[o] + acc;
}
