// The convolution of conv2d.wgsl (groups = 1) as a tiled matrix product, Y = W cols + b, with
// the columns of the unrolled input (im2col) gathered on the fly:
//   Y[o, q] = b[o] + sum_k W[o, k] cols[k, q],   k = (c, u, v),   q = (n, i, j),
//   cols[(c, u, v), (n, i, j)] = x[n, c, i*s+u*d-p, j*s+v*d-p]   (0 outside the image).
// Each workgroup computes a 32 x 32 tile of Y (32 output channels x 32 output pixels of the
// batch); each of its 64 invocations a 4 x 4 block of it. The tile's rows of W and columns of
// cols pass through workgroup memory 16 values of k at a time, so every value read from
// memory feeds 32 products instead of one. The sums run over k in the reference's order.
// A dense layer is the same product with 1 x 1 images (height = width = kernel = 1).
//
// `conv2d_backward_tiled` is the input gradient of a convolution as the same product: a
// stride-1 convolution of d_y (the `x` binding) with the weights flipped and transposed,
//   W'[c, (o, u, v)] = w[o, c, K-1-u, K-1-v],  padding (K-1) d - p,
// which the caller sets up (in_channels = the forward's out_channels and so on). With a
// forward stride s > 1 (`stride` keeps it) d_y is read dilated: s - 1 zeros between its values,
// d_y[t / s] where s divides t (the gradient reaches input pixel r only through the taps
// with i s + u d - p = r).
struct Params {
    batch: u32, in_channels: u32, height: u32, width: u32,
    out_channels: u32, out_height: u32, out_width: u32, kernel: u32,
    stride: u32, padding: u32, groups: u32, dilation: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TILE: u32 = 32u;
const DEPTH: u32 = 16u;

// [DEPTH][TILE] slices: w_tile[k * TILE + row], cols_tile[k * TILE + column].
var<workgroup> w_tile: array<f32, 512>;
var<workgroup> cols_tile: array<f32, 512>;

// The 4 x 4 block of the product Y[o0.., q0..] of invocation `lid`; W read as the forward's
// weights, or (transposed) flipped and transposed as the input gradient needs.
fn product_block(lid: u32, o0: u32, q0: u32, transposed: bool) -> array<vec4<f32>, 4> {
    let plane = p.out_height * p.out_width;
    let pixels = p.batch * plane;
    let taps = p.kernel * p.kernel;
    let depth = p.in_channels * taps;
    // This invocation's 4 x 4 block: rows ro..ro+3, columns rq..rq+3 of the tile.
    let ro = (lid / 8u) * 4u;
    let rq = (lid % 8u) * 4u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < depth; k0 += DEPTH) {
        for (var r = 0u; r < 8u; r++) {
            let e = lid + r * 64u;
            // W, read along k (contiguous in the forward): row e / DEPTH, depth e % DEPTH.
            let wo = o0 + e / DEPTH;
            let wk = k0 + e % DEPTH;
            var wv = 0.0;
            if (wo < p.out_channels && wk < depth) {
                if (transposed) {
                    wv = w[((wk / taps) * p.out_channels + wo) * taps + taps - 1u - wk % taps];
                } else {
                    wv = w[wo * depth + wk];
                }
            }
            w_tile[(e % DEPTH) * TILE + e / DEPTH] = wv;
            // cols, read along q (neighbouring pixels): depth e / TILE, column e % TILE.
            let ck = k0 + e / TILE;
            let cq = q0 + e % TILE;
            var cv = 0.0;
            if (ck < depth && cq < pixels) {
                let c = ck / taps;
                let u = (ck % taps) / p.kernel;
                let v = ck % p.kernel;
                let n = cq / plane;
                let i = (cq % plane) / p.out_width;
                let j = cq % p.out_width;
                // The forward reads x at stride `stride`; the gradient reads d_y dilated by it.
                let step = select(p.stride, 1u, transposed);
                let holes = i32(select(1u, p.stride, transposed));
                let row = i32(i * step + u * p.dilation) - i32(p.padding);
                let col = i32(j * step + v * p.dilation) - i32(p.padding);
                if (row >= 0 && col >= 0 && row % holes == 0 && col % holes == 0
                    && row / holes < i32(p.height) && col / holes < i32(p.width)) {
                    cv = x[((n * p.in_channels + c) * p.height + u32(row / holes)) * p.width + u32(col / holes)];
                }
            }
            cols_tile[e] = cv;
        }
        workgroupBarrier();
        for (var k = 0u; k < DEPTH; k++) {
            let a = vec4<f32>(w_tile[k * TILE + ro], w_tile[k * TILE + ro + 1u], w_tile[k * TILE + ro + 2u], w_tile[k * TILE + ro + 3u]);
            let c = vec4<f32>(cols_tile[k * TILE + rq], cols_tile[k * TILE + rq + 1u], cols_tile[k * TILE + rq + 2u], cols_tile[k * TILE + rq + 3u]);
            acc[0] += a.x * c;
            acc[1] += a.y * c;
            acc[2] += a.z * c;
            acc[3] += a.w * c;
        }
        workgroupBarrier();
    }
    return acc;
}

// The tile of workgroup `wid`: its first row and column, or none past the last tile (the same
// for every invocation of a workgroup, so the barriers stay in uniform control flow).
fn tile_origin(wid: vec3<u32>, groups: vec3<u32>) -> vec3<u32> {
    let tiles_q = (p.batch * p.out_height * p.out_width + TILE - 1u) / TILE;
    let tile = wid.x + wid.y * groups.x;
    let inside = u32(tile < tiles_q * ((p.out_channels + TILE - 1u) / TILE));
    return vec3<u32>((tile / tiles_q) * TILE, (tile % tiles_q) * TILE, inside);
}

// Writes invocation `lid`'s block of the tile at `origin`, row r plus bias[r]. The bias comes as
// a value so that the gradient's entry point binds none.
fn store_block(lid: u32, origin: vec3<u32>, acc: array<vec4<f32>, 4>, bias: vec4<f32>) {
    let plane = p.out_height * p.out_width;
    for (var a = 0u; a < 4u; a++) {
        let o = origin.x + (lid / 8u) * 4u + a;
        if (o >= p.out_channels) { break; }
        for (var t = 0u; t < 4u; t++) {
            let q = origin.y + (lid % 8u) * 4u + t;
            if (q >= p.batch * plane) { break; }
            y[((q / plane) * p.out_channels + o) * plane + q % plane] = bias[a] + acc[a][t];
        }
    }
}

@compute @workgroup_size(64)
fn conv2d_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let origin = tile_origin(wid, groups);
    if (origin.z == 0u) { return; }
    let acc = product_block(lid, origin.x, origin.y, false);
    var bias = vec4<f32>(0.0);
    for (var a = 0u; a < 4u; a++) {
        let o = origin.x + (lid / 8u) * 4u + a;
        if (o < p.out_channels) { bias[a] = b[o]; }
    }
    store_block(lid, origin, acc, bias);
}

@compute @workgroup_size(64)
fn conv2d_backward_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let origin = tile_origin(wid, groups);
    if (origin.z == 0u) { return; }
    store_block(lid, origin, product_block(lid, origin.x, origin.y, true), vec4<f32>(0.0));
}
