// Inference batch norm, folded on the host: y[n,c,i] = x[n,c,i] * scale[c] + shift[c].
struct Params { len: u32, channels: u32, plane: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn batch_norm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.len || idx >= arrayLength(&y)) { return; }
    let c = (idx / p.plane) % p.channels;
    y[idx] = x[idx] * scale[c] + shift[c];
}
