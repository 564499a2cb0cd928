// dX = dY where X > 0, else 0 (PyTorch's convention at exactly 0)
@group(0) @binding(1) var<storage, read> X: array<S>;
@group(0) @binding(2) var<storage, read> DY: array<S>;
@group(0) @binding(3) var<storage, read_write> DX: array<S>;
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_index(gid, nwg);
    if (i < P.len) {
        DX[i] = select(S(0.0), DY[i], X[i] > S(0.0));
    }
}
