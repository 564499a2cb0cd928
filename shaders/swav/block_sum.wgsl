// Distributed Sinkhorn: this rank's per-prototype sums U[k] = sum over blocks of PU[block, k]
// (then all-reduced with sum). With P.rescale (the first pass, whose blocks are shifted by
// their own maximum PM) each block is weighed by exp((PM[block, k] - M[k]) / eps) with the
// global maximum M, as first_shift does; blocks without active rows hold 0.
@group(0) @binding(1) var<storage, read> PM: array<V>;
@group(0) @binding(2) var<storage, read> PU: array<V>;
@group(0) @binding(3) var<storage, read> M: array<V>;
@group(0) @binding(4) var<storage, read_write> U: array<V>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= P.kv) {
        return;
    }
    var u = V(0.0);
    for (var b = 0u; b < P.blocks; b++) {
        let pu = PU[b * P.kv + k];
        if (P.rescale != 0u) {
            u += select(V(0.0), pu * exp((PM[b * P.kv + k] - M[k]) * P.inv_eps), pu > V(0.0));
        } else {
            u += pu;
        }
    }
    U[k] = u;
}
