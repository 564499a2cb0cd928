// GEMM core for real GPUs: BM x BN tiles of C per workgroup of WX x WY invocations, each
// owning TM x TN outputs strided by WY rows and WX columns (so a warp's reads of the staged
// tiles hit consecutive words). A and B are staged through workgroup memory in K-slices of BK:
// (BM + BN) * BK floats, at most WebGPU's default 16 KiB. Same loader contract as
// gemm_register_tiled.wgsl; {{...}} blocks are unrolled in Rust (ops/matmul/mod.rs). The
// staging functions come from workgroup_stage_scalar.wgsl (any loader) or
// workgroup_stage_vec4.wgsl (the dense_vec4.wgsl loader: vec4 global loads).
const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const INVOCATIONS: u32 = {{WX}}u * {{WY}}u;

var<workgroup> a_tile: array<f32, {{A_TILE_LEN}}>; // [BK][BM]
var<workgroup> b_tile: array<f32, {{B_TILE_LEN}}>; // [BK][BN]

{{STAGE_FNS}}
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
