// Combines the blocks of max_colsum: M[k] = max of PM[block, k], U[k] = sum of
// PU[block, k] * exp((PM[block, k] - M[k]) / eps) (blocks without active rows hold 0), then
// the first prototype normalisation as in shift.wgsl.
@group(0) @binding(1) var<storage, read> PM: array<V>;
@group(0) @binding(2) var<storage, read> PU: array<V>;
@group(0) @binding(3) var<storage, read_write> M: array<V>;
@group(0) @binding(4) var<storage, read_write> S: array<V>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= P.kv) {
        return;
    }
    var m = V(-0x1.fffffep+127f);
    for (var b = 0u; b < P.blocks; b++) {
        m = max(m, PM[b * P.kv + k]);
    }
    var u = V(0.0);
    for (var b = 0u; b < P.blocks; b++) {
        let pu = PU[b * P.kv + k];
        // Empty blocks: skip exp() of a huge negative number.
        u += select(V(0.0), pu * exp((PM[b * P.kv + k] - m) * P.inv_eps), pu > V(0.0));
    }
    M[k] = m;
    // u >= 1 for every prototype: E is 1 at its maximum.
    S[k] = m + log(u * P.k) / P.inv_eps;
}
