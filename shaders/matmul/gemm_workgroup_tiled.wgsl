// GEMM core for real GPUs: 64x64 tiles of C per workgroup of 16x16 invocations (4x4 each),
// A and B staged through workgroup memory in K-slices of 16 (8 KiB, under WebGPU's 16 KiB).
// Same loader contract as gemm_register_tiled.wgsl; {{...}} blocks are unrolled in Rust.
const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [BK][BM]
var<workgroup> b_tile: array<f32, 1024>; // [BK][BN]

fn stage_tiles(flat: u32, tile_m: u32, tile_n: u32, k0: u32, k_end: u32, t: u32) {
    // 1024 elements of each tile, 4 per invocation; consecutive invocations read consecutive
    // k for A and consecutive n for B.
    let idx = flat + t * 256u;
    let am = idx / BK;
    let ak = idx % BK;
    let m = tile_m + am;
    let k = k0 + ak;
    var av = 0.0;
    if (m < P.m && k < k_end) {
        av = a_at(row_ctx(m), k_ctx(k));
    }
    a_tile[ak * BM + am] = av;
    let bk = idx / BN;
    let bn = idx % BN;
    let n = tile_n + bn;
    let kb = k0 + bk;
    var bv = 0.0;
    if (n < P.n && kb < k_end) {
        bv = b_at(k_ctx(kb), col_ctx(n));
    }
    b_tile[bk * BN + bn] = bv;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tile_m = wid.y * BM;
    let tile_n = wid.x * BN;
    let split = wid.z;
    let k_begin = split * P.k_chunk;
    let k_end = min(k_begin + P.k_chunk, P.k);
    let flat = lid.y * 16u + lid.x;
{{ACC}}
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        stage_tiles(flat, tile_m, tile_n, k0, k_end, 0u);
        stage_tiles(flat, tile_m, tile_n, k0, k_end, 1u);
        stage_tiles(flat, tile_m, tile_n, k0, k_end, 2u);
        stage_tiles(flat, tile_m, tile_n, k0, k_end, 3u);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
{{LOAD_AND_FMA}}
        }
        workgroupBarrier();
    }
{{STORE}}
}
