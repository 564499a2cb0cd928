// Reduction of a short middle axis (at most a few hundred values): one invocation per output
// (o, i) walks it, no workgroup memory and no barriers. Why: the tree kernel gives each output
// a 64-wide workgroup and 7 barriers, which on software adapters costs far more than summing
// a split-K slab's few partials; neighbouring invocations read neighbouring addresses.
struct Params {
    outer: u32, reduce: u32, inner: u32, op_max: u32,
    square: u32, finish: u32, scale: f32, _p0: u32, // finish: 0 none, 1 scale, 2 sqrt
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.y * nwg.x * 256u;
    if (j >= P.outer * P.inner) {
        return;
    }
    let o = j / P.inner;
    let i = j - o * P.inner;
    var acc = 0.0;
    if (P.op_max != 0u) {
        acc = -0x1.fffffep+127f;
    }
    var at = o * P.reduce * P.inner + i;
    for (var r = 0u; r < P.reduce; r++) {
        var v = X[at];
        if (P.square != 0u) {
            v = v * v;
        }
        if (P.op_max != 0u) {
            acc = max(acc, v);
        } else {
            acc += v;
        }
        at += P.inner;
    }
    if (P.finish == 1u) {
        acc = acc * P.scale;
    } else if (P.finish == 2u) {
        acc = sqrt(acc);
    }
    Y[j] = acc;
}
