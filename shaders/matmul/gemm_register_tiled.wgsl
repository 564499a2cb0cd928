// GEMM core, barrier-free: each invocation owns a TM x TN register tile of C and streams K.
// Why: software adapters (lavapipe, SwiftShader) run workgroup barriers as coroutine switches,
// so a tile kept in registers is ~20x faster there than workgroup-memory tiling.
// The loader (prepended) defines P (with m, n, k, k_chunk), RowCtx/KCtx/ColCtx,
// row_ctx(m), k_ctx(k), col_ctx(n), a_at(row, kc), b_at(kc, col) and c_store(split, m, n, v).
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN;
    if (row0 >= P.m || col0 >= P.n) {
        return;
    }
    let split = gid.z;
    let k_begin = split * P.k_chunk;
    let k_end = min(k_begin + P.k_chunk, P.k);
    // Clamped indices keep every load in bounds without branches; only stores are guarded.
    var rows: array<RowCtx, TM>;
    for (var i = 0u; i < TM; i++) {
        rows[i] = row_ctx(min(row0 + i, P.m - 1u));
    }
    var cols: array<ColCtx, TN>;
    for (var j = 0u; j < TN; j++) {
        cols[j] = col_ctx(min(col0 + j, P.n - 1u));
    }
    var acc: array<f32, TM * TN>;
    for (var k = k_begin; k < k_end; k++) {
        let kc = k_ctx(k);
        var a: array<f32, TM>;
        for (var i = 0u; i < TM; i++) {
            a[i] = a_at(rows[i], kc);
        }
        for (var j = 0u; j < TN; j++) {
            let b = b_at(kc, cols[j]);
            for (var i = 0u; i < TM; i++) {
                acc[i * TN + j] = fma(a[i], b, acc[i * TN + j]);
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
            if (row0 + i < P.m && col0 + j < P.n) {
                c_store(split, row0 + i, col0 + j, acc[i * TN + j]);
            }
        }
    }
}
