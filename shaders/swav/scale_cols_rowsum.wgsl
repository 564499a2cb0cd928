// Row pass: each prototype divided by its sum, then by K (on the first iteration after the
// division by the total, as the official code: Q / total / (U[k] / total) / K), and the
// chunk's partial per-sample sums PV[r, chunk].
@group(0) @binding(1) var<storage, read> U: array<f32>;
@group(0) @binding(2) var<storage, read> TOTAL: array<f32>;
@group(0) @binding(3) var<storage, read_write> Q: array<f32>;
@group(0) @binding(4) var<storage, read_write> PV: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    let chunk = gid.y;
    if (r >= P.rows) {
        return;
    }
    let total = TOTAL[0];
    var s = 0.0;
    for (var k = chunk * COL_CHUNK; k < min((chunk + 1u) * COL_CHUNK, P.k); k++) {
        let i = r * P.k + k;
        var v = 0.0;
        if (P.first != 0u) {
            v = Q[i] / total / (U[k] / total * f32(P.k));
        } else {
            v = Q[i] / (U[k] * f32(P.k));
        }
        Q[i] = v;
        s += v;
    }
    PV[r * P.chunks + chunk] = s;
}
