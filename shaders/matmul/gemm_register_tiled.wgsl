// GEMM core, barrier-free: each invocation owns a TM x TN register tile of C and streams K.
// Why: software adapters (lavapipe, SwiftShader) run workgroup barriers as coroutine switches,
// so a tile kept in registers is ~20x faster there than workgroup-memory tiling.
// The K loop spliced in below is k_loop_scalar.wgsl (any loader) or k_loop_vec4.wgsl (the
// dense_vec4.wgsl loader), unrolled by ops/matmul/mod.rs (one statement per tile element): scalars instead of arrays
// stay in registers, and llvmpipe counts every loop iteration an invocation runs against a
// cap of 65535, so only the K loop may loop.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * {{TM}}u;
    let col0 = gid.x * {{TN}}u;
    if (row0 >= P.m || col0 >= P.n) {
        return;
    }
    let split = gid.z;
{{K_LOOP}}
}
