// Reduces the middle axis of X viewed as [outer, reduce, inner] (sum or max, optionally of
// squares; finished by a scale or a sqrt). One workgroup per (outer, chunk, inner) output:
// a strided per-invocation pass, then a tree in workgroup memory. Long axes take several
// passes (chunks), never float atomics, which browsers do not have.
struct Params {
    outer: u32, reduce: u32, inner: u32, chunk: u32,
    n_chunks: u32, op_max: u32, square: u32, finish: u32, // finish: 0 none, 1 scale, 2 sqrt
    scale: f32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

const WG: u32 = 64u;
const LOWEST: f32 = -0x1.fffffep+127f;
var<workgroup> partial: array<f32, WG>;

fn combine(a: f32, b: f32) -> f32 {
    if (P.op_max != 0u) {
        return max(a, b);
    }
    return a + b;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let wid = wg.x + wg.y * nwg.x;
    let total = P.outer * P.n_chunks * P.inner;
    if (wid >= total) {
        return;
    }
    let i = wid % P.inner;
    let t = wid / P.inner;
    let ch = t % P.n_chunks;
    let o = t / P.n_chunks;
    var acc = 0.0;
    if (P.op_max != 0u) {
        acc = LOWEST;
    }
    let r_end = min((ch + 1u) * P.chunk, P.reduce);
    for (var r = ch * P.chunk + lid; r < r_end; r += WG) {
        var v = X[(o * P.reduce + r) * P.inner + i];
        if (P.square != 0u) {
            v = v * v;
        }
        acc = combine(acc, v);
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] = combine(partial[lid], partial[lid + stride]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var r = partial[0];
        if (P.finish == 1u) {
            r = r * P.scale;
        } else if (P.finish == 2u) {
            r = sqrt(r);
        }
        Y[(o * P.n_chunks + ch) * P.inner + i] = r;
    }
}
