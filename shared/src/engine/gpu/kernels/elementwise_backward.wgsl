// Elementwise gradients, one invocation per value:
//   relu_backward:            d_x = x > 0 ? d_y : 0                   (x = the ReLU's input)
//   channel_scale:            d_x[n,c,i] = d_y[n,c,i] * scale[c]      (batch-norm backward; 1/std for the input
//                             normalisation; a 0/1 mask for channel ablation in the forward pass)
//   global_avg_pool_backward: d_x[n,c,i] = d_y[n,c] / plane
struct Params { len: u32, channels: u32, plane: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> d_y: array<f32>;
@group(0) @binding(1) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&d_x)) { return; }
    d_x[idx] = select(0.0, d_y[idx], aux[idx] > 0.0);
}

@compute @workgroup_size(64)
fn channel_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&d_x)) { return; }
    d_x[idx] = d_y[idx] * aux[(idx / p.plane) % p.channels];
}

@compute @workgroup_size(64)
fn global_avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.len || idx >= arrayLength(&d_x)) { return; }
    d_x[idx] = d_y[idx / p.plane] / f32(p.plane);
}
