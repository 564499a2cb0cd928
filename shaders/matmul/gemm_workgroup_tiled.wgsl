// GEMM core for real GPUs: BM x BN tiles of C per workgroup of WX x WY invocations, each
// owning TM x TN outputs strided by WY rows and WX columns (so a warp's reads of the staged
// tiles hit consecutive words). A and B are staged through workgroup memory in K-slices of BK:
// (BM + BN) * BK floats, at most WebGPU's default 16 KiB. Same loader contract as
// gemm_register_tiled.wgsl; {{...}} blocks are unrolled in Rust (ops/matmul/mod.rs).
const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const INVOCATIONS: u32 = {{WX}}u * {{WY}}u;

var<workgroup> a_tile: array<f32, {{A_TILE_LEN}}>; // [BK][BM]
var<workgroup> b_tile: array<f32, {{B_TILE_LEN}}>; // [BK][BN]

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

@compute @workgroup_size({{WX}}, {{WY}}, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tile_m = wid.y * BM;
    let tile_n = wid.x * BN;
    let split = wid.z;
    let k_begin = split * P.k_chunk;
    let k_end = min(k_begin + P.k_chunk, P.k);
    let flat = lid.y * {{WX}}u + lid.x;
{{ACC}}
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
{{STAGE}}
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
{{LOAD_AND_FMA}}
        }
        workgroupBarrier();
    }
{{STORE}}
}
