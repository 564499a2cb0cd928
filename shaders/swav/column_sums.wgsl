// U[k] = sum over rows of Q[r, k] (the per-prototype sums; inactive rows are zero).
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read_write> U: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = element_id(gid, nwg);
    if (k >= P.k) {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < P.rows; r++) {
        s += Q[r * P.k + k];
    }
    U[k] = s;
}
