// Column pass: PU[block, k] = sum over the block's active rows of E[r, k] * beta[r], the
// partial per-prototype sums.
@group(0) @binding(1) var<storage, read> X: array<V>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read> M: array<V>;
@group(0) @binding(4) var<storage, read> BETA: array<f32>;
@group(0) @binding(5) var<storage, read_write> PU: array<V>;

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
    let m = M[k];
    var s = V(0.0);
    for (var r = r0; r < r1; r++) {
        s += exp((X[r * P.kv + k] - m) * P.inv_eps) * BETA[r];
    }
    PU[block * P.kv + k] = s;
}
