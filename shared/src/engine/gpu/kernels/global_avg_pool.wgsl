// y[n,c] = mean_{h,w} x[n,c,h,w]: one invocation per plane.
struct Params { planes: u32, plane: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn global_avg_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = gid.x + gid.y * groups.x * 64u;
    if (idx >= p.planes || idx >= arrayLength(&y)) { return; }
    var sum = 0.0;
    for (var i = 0u; i < p.plane; i++) {
        sum += x[idx * p.plane + i];
    }
    y[idx] = sum / f32(p.plane);
}
