// vec4 GEMM core (loader: dense_vec4.wgsl) for software adapters with subgroups: all
// invocations of a workgroup own the same TM rows (each TN columns of its own), so each lane
// loads only rows lane, lane + SG, ... of A and subgroupBroadcast hands them to the others.
// Why: on llvmpipe a subgroup is the SIMD vector, a broadcast is one shuffle, and every load
// is a per-lane loop: this cuts A's loads SG-fold. No early return: every lane must reach the
// broadcasts (loads are clamped in bounds, stores guarded).
// {{...}} blocks are unrolled in ops/matmul/mod.rs.
@compute @workgroup_size({{LANES}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * {{TM}}u;
    let col0 = (wid.x * {{LANES}}u + lid.x) * {{TN}}u;
    let split = wid.z;
    let k_begin = split * P.k_chunk;
    let k_end = min(k_begin + P.k_chunk, P.k);
    let k4 = P.k / 4u;
    let n4 = P.n / 4u;
{{SETUP}}
    for (var k = k_begin / 4u; k < k_end / 4u; k++) {
{{BODY}}
    }
{{STORE}}
}
