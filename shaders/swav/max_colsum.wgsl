// First column pass, reading X once for two things: over the block's active rows, the
// per-prototype maximum PM[block, k] (the shift that keeps exp() finite in f32) and
// PU[block, k] = sum of exp((X[r, k] - PM[block, k]) / eps). Online, as in a streaming
// softmax: rows come 8 at a time, and when the running maximum grows the sum so far is
// rescaled (one extra exp() per 8 elements instead of a second pass over X).
@group(0) @binding(1) var<storage, read> X: array<V>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> PM: array<V>;
@group(0) @binding(4) var<storage, read_write> PU: array<V>;

const STEP: u32 = 8u;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let block = gid.y;
    if (k >= P.kv) {
        return;
    }
    let rows = block_rows(block, ACTIVE[0]);
    let r0 = rows.x;
    let r1 = rows.y;
    var m = V(-0x1.fffffep+127f);
    var s = V(0.0);
    var r = r0;
    for (; r + STEP <= r1; r += STEP) {
        var x: array<V, STEP>;
        var mb = m;
        for (var j = 0u; j < STEP; j++) {
            x[j] = X[(r + j) * P.kv + k];
            mb = max(mb, x[j]);
        }
        // s is 0 until the first rows are in: never exp() of a huge negative number.
        s = select(V(0.0), s * exp((m - mb) * P.inv_eps), s > V(0.0));
        for (var j = 0u; j < STEP; j++) {
            s += exp((x[j] - mb) * P.inv_eps);
        }
        m = mb;
    }
    for (; r < r1; r++) {
        let x = X[r * P.kv + k];
        let mb = max(m, x);
        s = select(V(0.0), s * exp((m - mb) * P.inv_eps), s > V(0.0)) + exp((x - mb) * P.inv_eps);
        m = mb;
    }
    PM[block * P.kv + k] = m;
    PU[block * P.kv + k] = s;
}
