// C = alpha * A + beta * B: the residual add (1, 1) and gradient accumulation.
@group(0) @binding(1) var<storage, read> A: array<V>;
@group(0) @binding(2) var<storage, read> B: array<V>;
@group(0) @binding(3) var<storage, read_write> C: array<V>;
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_index(gid, nwg);
    if (i < P.len) {
        C[i] = P.alpha * A[i] + P.beta * B[i];
    }
}
