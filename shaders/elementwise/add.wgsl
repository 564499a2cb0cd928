// C = alpha * A + beta * B: the residual add (1, 1) and gradient accumulation; then
// max(C, 0) when P.relu (the plan fuses the ReLU after a residual add here).
@group(0) @binding(1) var<storage, read> A: array<S>;
@group(0) @binding(2) var<storage, read> B: array<S>;
@group(0) @binding(3) var<storage, read_write> C: array<S>;
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_index(gid, nwg);
    if (i < P.len) {
        let c = P.alpha * V(A[i]) + P.beta * V(B[i]);
        if (P.relu != 0u) {
            C[i] = S(max(c, V(0.0)));
        } else {
            C[i] = S(c);
        }
    }
}
