// The start of the backward pass on the GPU: per image, the objective's value and its gradient
// with respect to the node it reads (engine::objective's value_and_seed, the same math), so the
// forward and backward passes go in one submission. One invocation per image.
//   kind 0: the logit `index`;  1: cross-entropy toward class `index` (softmax minus one-hot);
//   2: the spatial maximum of channel `index` (the first maximum takes the gradient);
//   3: the spatial sum of channel `index`.
struct Params { batch: u32, per_image: u32, plane: u32, kind: u32, index: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> seed: array<f32>;
@group(0) @binding(5) var<storage, read_write> value: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn objective_seed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let n = gid.x + gid.y * groups.x * 64u;
    if (n >= p.batch) { return; }
    let base = n * p.per_image;
    for (var i = 0u; i < p.per_image; i++) {
        seed[base + i] = 0.0;
    }
    switch p.kind {
        case 0u: {
            value[n] = act[base + p.index];
            seed[base + p.index] = 1.0;
        }
        case 1u: {
            var top = act[base];
            for (var i = 1u; i < p.per_image; i++) {
                top = max(top, act[base + i]);
            }
            var sum = 0.0;
            for (var i = 0u; i < p.per_image; i++) {
                let e = exp(act[base + i] - top);
                seed[base + i] = e;
                sum += e;
            }
            for (var i = 0u; i < p.per_image; i++) {
                seed[base + i] = seed[base + i] / sum;
            }
            let chosen = seed[base + p.index];
            // f32::MIN_POSITIVE, as the CPU engine clamps the probability.
            value[n] = -log(max(chosen, 1.17549435e-38));
            seed[base + p.index] = chosen - 1.0;
        }
        case 2u: {
            let start = base + p.index * p.plane;
            var at = 0u;
            for (var i = 1u; i < p.plane; i++) {
                if (act[start + i] > act[start + at]) { at = i; }
            }
            value[n] = act[start + at];
            seed[start + at] = 1.0;
        }
        default: {
            let start = base + p.index * p.plane;
            var sum = 0.0;
            for (var i = 0u; i < p.plane; i++) {
                sum += act[start + i];
                seed[start + i] = 1.0;
            }
            value[n] = sum;
        }
    }
}
