// GEMM core for software adapters with subgroups (same loops as gemm_register_tiled.wgsl):
// all invocations of a workgroup own the same TM rows of C (each TN columns of its own), so
// each lane loads only rows lane, lane + SG, ... of A and subgroupBroadcast hands them to the
// others. Why: on llvmpipe a subgroup is the SIMD vector, a broadcast is one shuffle, and
// every storage load is a per-lane loop: A's loads drop SG-fold. No early return: every lane
// must reach the broadcasts (loads are clamped in bounds, stores guarded).
@compute @workgroup_size({{LANES}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * {{TM}}u;
    let col0 = (wid.x * {{LANES}}u + lid.x) * {{TN}}u;
    let split = wid.z;
{{K_LOOP}}
}
