// vec4 staging for gemm_workgroup_tiled.wgsl over dense_vec4.wgsl (A [M,K], B [K,N]
// row-major, K and N multiples of 4, slabs of K a multiple of 4): one global load brings 4
// values, so a tile takes a quarter of the load instructions.

// vec4 t of this invocation's share of the A tile: 4 consecutive k of one row m.
fn stage_a(flat: u32, tile_m: u32, k0: u32, k_end: u32, t: u32) {
    let idx = flat + t * INVOCATIONS;
    let am = idx / (BK / 4u);
    let ak = 4u * (idx % (BK / 4u));
    let m = tile_m + am;
    let k = k0 + ak;
    var v = vec4<f32>(0.0);
    if (m < P.m && k < k_end) {
        v = A[m * (P.k / 4u) + k / 4u];
    }
    a_tile[ak * BM + am] = v.x;
    a_tile[(ak + 1u) * BM + am] = v.y;
    a_tile[(ak + 2u) * BM + am] = v.z;
    a_tile[(ak + 3u) * BM + am] = v.w;
}

// vec4 t of this invocation's share of the B tile: 4 consecutive n of one row k.
fn stage_b(flat: u32, tile_n: u32, k0: u32, k_end: u32, t: u32) {
    let idx = flat + t * INVOCATIONS;
    let bk = idx / (BN / 4u);
    let bn = 4u * (idx % (BN / 4u));
    let n = tile_n + bn;
    let k = k0 + bk;
    var v = vec4<f32>(0.0);
    if (n < P.n && k < k_end) {
        v = B[k * (P.n / 4u) + n / 4u];
    }
    b_tile[bk * BN + bn] = v.x;
    b_tile[bk * BN + bn + 1u] = v.y;
    b_tile[bk * BN + bn + 2u] = v.z;
    b_tile[bk * BN + bn + 3u] = v.w;
}

fn c_store(split: u32, m: u32, n: u32, v: f32) {
    var r = v;
    // Under split-K only the first slab carries the bias.
    if (P.has_bias != 0u && split == 0u) {
        r += BIAS[n];
    }
    C[(split * P.m + m) * P.n + n] = r;
}
