// The K loop of a register tile over any loader: the loader (prepended) defines P (with m,
// n, k, k_chunk), RowCtx/KCtx/ColCtx, row_ctx(m), k_ctx(k), col_ctx(n), a_at(row, kc),
// b_at(kc, col) and c_store(split, m, n, v). Spliced into a core's main.
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
