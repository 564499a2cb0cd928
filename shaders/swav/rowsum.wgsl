// Row pass: PV[r, chunk] = sum over the chunk's prototypes of E[r, k] * alpha[k], the partial
// per-sample sums (0 for inactive rows). An invocation keeps its chunk's shifts in registers
// and walks a block of rows.
@group(0) @binding(1) var<storage, read> X: array<V>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<V>;
@group(0) @binding(4) var<storage, read_write> PV: array<f32>;

@compute @workgroup_size(32, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let chunk = gid.x;
    let block = gid.y;
    if (chunk >= P.chunks) {
        return;
    }
    // Columns past the end (last chunk) read the last column and are masked to 0.
    var shift: array<V, COL_CHUNK>;
    var col: array<u32, COL_CHUNK>;
    var keep: array<f32, COL_CHUNK>;
    for (var j = 0u; j < COL_CHUNK; j++) {
        let k = chunk * COL_CHUNK + j;
        col[j] = min(k, P.kv - 1u);
        shift[j] = S[col[j]];
        keep[j] = select(0.0, 1.0, k < P.kv);
    }
    let first = first_active_row(ACTIVE[0]);
    for (var r = block * ROW_BLOCK; r < min((block + 1u) * ROW_BLOCK, P.rows); r++) {
        var s = V(0.0);
        for (var j = 0u; j < COL_CHUNK; j++) {
            s += exp((X[r * P.kv + col[j]] - shift[j]) * P.inv_eps) * keep[j];
        }
        PV[r * P.chunks + chunk] = select(0.0, hsum(s), r >= first);
    }
}
