// vec4 GEMM core (loader: dense_vec4.wgsl), barrier-free: each invocation owns TM rows x TN
// columns of C and loads its own A rows. {{...}} blocks are unrolled in ops/matmul/mod.rs.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * {{TM}}u;
    let col0 = gid.x * {{TN}}u;
    if (row0 >= P.m || col0 >= P.n) {
        return;
    }
    let split = gid.z;
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
