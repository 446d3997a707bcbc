// A per-channel bias added in place, as `add_channel_bias` in engine/cpu (a transposed
// convolution's bias, after the gather of `conv2d_backward` computed its sums):
//   y[n, c, i] += b[c]   (planes of `plane` values, `channels` of them per image)
struct Params { len: u32, channels: u32, plane: u32, _pad: u32 }

@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn add_channel_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.len || idx >= arrayLength(&y)) { return; }
    let c = (idx / p.plane) % p.channels;
    if (c >= arrayLength(&b)) { return; }
    y[idx] = y[idx] + b[c];
}
