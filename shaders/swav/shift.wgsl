// The prototype normalisation: alpha[k] = 1 / (K * sum over blocks of PU[block, k]), kept
// folded into the exponent's shift: E[r, k] * alpha[k] = exp((X[r, k] - S[k]) / eps) with
// S[k] = M[k] - eps * ln(alpha[k]) (one load per element instead of two in the row passes).
@group(0) @binding(1) var<storage, read> PU: array<V>;
@group(0) @binding(2) var<storage, read> M: array<V>;
@group(0) @binding(3) var<storage, read_write> S: array<V>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= P.kv) {
        return;
    }
    var u = V(0.0);
    for (var b = 0u; b < P.blocks; b++) {
        u += PU[b * P.kv + k];
    }
    // u >= 1 for every prototype: E is 1 at its maximum, whose row keeps beta > 0.
    S[k] = M[k] + log(u * P.k) / P.inv_eps;
}
