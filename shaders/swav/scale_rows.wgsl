// Each sample divided by its sum, then by B_s: Q[r, k] /= V[r] * B_s (inactive rows stay 0).
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> Q: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_id(gid, nwg);
    if (i >= P.rows * P.k) {
        return;
    }
    let r = i / P.k;
    let v = V[r];
    Q[i] = select(0.0, Q[i] / (v * samples(ACTIVE[0])), v > 0.0);
}
