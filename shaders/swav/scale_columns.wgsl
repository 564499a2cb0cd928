// Each prototype divided by its sum, then by K: Q[r, k] /= U[k] * K.
@group(0) @binding(1) var<storage, read> U: array<f32>;
@group(0) @binding(2) var<storage, read_write> Q: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_id(gid, nwg);
    if (i < P.rows * P.k) {
        let k = i % P.k;
        Q[i] = Q[i] / (U[k] * f32(P.k));
    }
}
