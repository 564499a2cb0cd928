// Y = max(X, 0)
@group(0) @binding(1) var<storage, read> X: array<S>;
@group(0) @binding(2) var<storage, read_write> Y: array<S>;
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_index(gid, nwg);
    if (i < P.len) {
        Y[i] = S(max(V(X[i]), V(0.0)));
    }
}
