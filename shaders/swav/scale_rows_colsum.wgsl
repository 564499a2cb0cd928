// Column pass: each sample divided by its sum, then by B_s (inactive rows stay 0), and the
// block's partial per-prototype sums PU[block, k] for the next iteration.
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> Q: array<f32>;
@group(0) @binding(4) var<storage, read_write> PU: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let block = gid.y;
    if (k >= P.k) {
        return;
    }
    let bs = samples(ACTIVE[0]);
    var s = 0.0;
    for (var r = block * ROW_BLOCK; r < min((block + 1u) * ROW_BLOCK, P.rows); r++) {
        let i = r * P.k + k;
        let v = V[r];
        let q = select(0.0, Q[i] / (v * bs), v > 0.0);
        Q[i] = q;
        s += q;
    }
    PU[block * P.k + k] = s;
}
