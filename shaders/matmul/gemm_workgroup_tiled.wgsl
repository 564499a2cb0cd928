// GEMM core for real GPUs: 64x64 tiles of C per workgroup of 16x16 invocations (4x4 each),
// A and B staged through workgroup memory in K-slices of 16 (8 KiB, under WebGPU's 16 KiB).
// Same loader contract as gemm_register_tiled.wgsl.
const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [BK][BM]
var<workgroup> b_tile: array<f32, 1024>; // [BK][BN]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tile_m = wid.y * BM;
    let tile_n = wid.x * BN;
    let split = wid.z;
    let k_begin = split * P.k_chunk;
    let k_end = min(k_begin + P.k_chunk, P.k);
    let flat = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        // 1024 elements of each tile, 4 per invocation; consecutive invocations read
        // consecutive k for A and consecutive n for B.
        for (var t = 0u; t < 4u; t++) {
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
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = a_tile[kk * BM + lid.y + i * 16u];
                b[i] = b_tile[kk * BN + lid.x + i * 16u];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            let m = tile_m + lid.y + i * 16u;
            let n = tile_n + lid.x + j * 16u;
            if (m < P.m && n < P.n) {
                c_store(split, m, n, acc[i * 4u + j]);
            }
        }
    }
}
