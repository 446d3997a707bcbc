// Bilinear upsampling by an integer scale, the same sums as `resize_bilinear_forward` and
// `resize_bilinear_backward` in engine/cpu/resize.rs (planes = batch x channels). Output index
// `d` of an axis of n inputs reads inputs i0, i1 with weights 1 - l, l (`tap`):
//   half-pixel centres: src = max((d + 1/2) / s - 1/2, 0);  corners aligned: src = d (n - 1) / (n s - 1)
//   i0 = floor(src), i1 = min(i0 + 1, n - 1), l = src - i0
//   resize_bilinear_forward:  y[p, i, j] = sum over the taps of row i and column j    (one invocation per output value)
//   resize_bilinear_backward: d_x[p, r, c] = sum over the outputs whose taps include (r, c) of
//                             their weight times d_y                                      (one per input value)
struct Params { planes: u32, height: u32, width: u32, scale: u32, align_corners: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

struct Tap { i0: u32, i1: u32, l: f32 }

fn tap(d: u32, n: u32) -> Tap {
    let m = n * p.scale;
    var at = 0.0;
    if (p.align_corners != 0u) {
        if (m > 1u) { at = f32(d) * f32(n - 1u) / f32(m - 1u); }
    } else {
        at = max((f32(d) + 0.5) / f32(p.scale) - 0.5, 0.0);
    }
    let i0 = min(u32(at), n - 1u);
    return Tap(i0, min(i0 + 1u, n - 1u), at - f32(i0));
}

// The weight with which output index d of an axis of n inputs reads input r.
fn weight(d: u32, n: u32, r: u32) -> f32 {
    let t = tap(d, n);
    var w = 0.0;
    if (t.i0 == r) { w += 1.0 - t.l; }
    if (t.i1 == r) { w += t.l; }
    return w;
}

// The outputs of an axis of n inputs that may read input r: [lo, hi).
fn reach(r: u32, n: u32) -> vec2<u32> {
    let m = n * p.scale;
    var ratio = f32(p.scale);
    if (p.align_corners != 0u && n > 1u) { ratio = f32(m - 1u) / f32(n - 1u); }
    let lo = max(f32(r) - 1.0, 0.0) * ratio;
    let hi = (f32(r) + 2.0) * ratio + 1.0;
    return vec2<u32>(u32(max(lo - 1.0, 0.0)), min(u32(hi), m));
}

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn resize_bilinear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    let oh = p.height * p.scale;
    let ow = p.width * p.scale;
    if (idx >= p.planes * oh * ow || idx >= arrayLength(&dst)) { return; }
    let j = idx % ow;
    let i = (idx / ow) % oh;
    let base = (idx / (ow * oh)) * p.height * p.width;
    let r = tap(i, p.height);
    let c = tap(j, p.width);
    let last = base + r.i1 * p.width + c.i1;
    if (last >= arrayLength(&src)) { return; }
    let top0 = src[base + r.i0 * p.width + c.i0];
    let top1 = src[base + r.i0 * p.width + c.i1];
    let bottom0 = src[base + r.i1 * p.width + c.i0];
    let bottom1 = src[last];
    let upper = top0 + c.l * (top1 - top0);
    let lower = bottom0 + c.l * (bottom1 - bottom0);
    dst[idx] = upper + r.l * (lower - upper);
}

@compute @workgroup_size(64)
fn resize_bilinear_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = index(gid, groups);
    if (idx >= p.planes * p.height * p.width || idx >= arrayLength(&dst)) { return; }
    let c = idx % p.width;
    let r = (idx / p.width) % p.height;
    let plane = idx / (p.width * p.height);
    let oh = p.height * p.scale;
    let ow = p.width * p.scale;
    let rows = reach(r, p.height);
    let cols = reach(c, p.width);
    var sum = 0.0;
    for (var i = rows.x; i < rows.y; i++) {
        let wr = weight(i, p.height, r);
        if (wr == 0.0) { continue; }
        for (var j = cols.x; j < cols.y; j++) {
            let wc = weight(j, p.width, c);
            let at = (plane * oh + i) * ow + j;
            if (wc != 0.0 && at < arrayLength(&src)) { sum += wr * wc * src[at]; }
        }
    }
    dst[idx] = sum;
}
