// Column pass: Q = exp((X - M[k]) / eps) on active rows (0 elsewhere), and the block's
// partial per-prototype sums PU[block, k].
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> Q: array<f32>;
@group(0) @binding(5) var<storage, read_write> PU: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let block = gid.y;
    if (k >= P.k) {
        return;
    }
    let first = first_active_row(ACTIVE[0]);
    let m = M[k];
    var s = 0.0;
    for (var r = block * ROW_BLOCK; r < min((block + 1u) * ROW_BLOCK, P.rows); r++) {
        let i = r * P.k + k;
        var v = 0.0;
        if (r >= first) {
            v = exp((X[i] - m) * P.inv_eps);
        }
        Q[i] = v;
        s += v;
    }
    PU[block * P.k + k] = s;
}
