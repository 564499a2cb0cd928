// Scalar staging for gemm_workgroup_tiled.wgsl, through the loader's a_at / b_at.
// Element t of this invocation's share of the A tile; consecutive invocations read
// consecutive k (A's rows are contiguous in K for the untransposed dense loader and conv).
fn stage_a(flat: u32, tile_m: u32, k0: u32, k_end: u32, t: u32) {
    let idx = flat + t * INVOCATIONS;
    let am = idx / BK;
    let ak = idx % BK;
    let m = tile_m + am;
    let k = k0 + ak;
    var v = 0.0;
    if (m < P.m && k < k_end) {
        v = a_at(row_ctx(m), k_ctx(k));
    }
    a_tile[ak * BM + am] = v;
}

// Element t of this invocation's share of the B tile; consecutive invocations read
// consecutive n.
fn stage_b(flat: u32, tile_n: u32, k0: u32, k_end: u32, t: u32) {
    let idx = flat + t * INVOCATIONS;
    let bk = idx / BN;
    let bn = idx % BN;
    let n = tile_n + bn;
    let k = k0 + bk;
    var v = 0.0;
    if (n < P.n && k < k_end) {
        v = b_at(k_ctx(k), col_ctx(n));
    }
    b_tile[bk * BN + bn] = v;
}
