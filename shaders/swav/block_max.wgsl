// Distributed Sinkhorn, first pass: this rank's per-prototype maximum M[k] = max over blocks
// of PM[block, k] (then all-reduced with max, so every rank shifts by the same M).
@group(0) @binding(1) var<storage, read> PM: array<V>;
@group(0) @binding(2) var<storage, read_write> M: array<V>;

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
    M[k] = m;
}
