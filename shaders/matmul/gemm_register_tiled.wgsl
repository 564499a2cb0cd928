// GEMM core, barrier-free: each invocation owns a TM x TN register tile of C and streams K.
// Why: software adapters (lavapipe, SwiftShader) run workgroup barriers as coroutine switches,
// so a tile kept in registers is ~20x faster there than workgroup-memory tiling.
// The {{...}} blocks are unrolled by ops/matmul/mod.rs (one statement per tile element):
// scalars instead of arrays stay in registers, and llvmpipe counts every loop iteration an
// invocation runs against a cap of 65535, so only the K loop may loop.
// The loader (prepended) defines P (with m, n, k, k_chunk), RowCtx/KCtx/ColCtx,
// row_ctx(m), k_ctx(k), col_ctx(n), a_at(row, kc), b_at(kc, col) and c_store(split, m, n, v).
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * {{TM}}u;
    let col0 = gid.x * {{TN}}u;
    if (row0 >= P.m || col0 >= P.n) {
        return;
    }
    let split = gid.z;
    let k_begin = split * P.k_chunk;
    let k_end = min(k_begin + P.k_chunk, P.k);
    // Clamped indices keep every load in bounds without branches; only stores are guarded.
{{ROWS_AND_COLS}}
{{ACC}}
    for (var k = k_begin; k < k_end; k++) {
        let kc = k_ctx(k);
{{LOAD_AND_FMA}}
    }
{{STORE}}
}
