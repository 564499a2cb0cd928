// Q = exp((X - M[k]) / eps) on active rows, 0 elsewhere.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> Q: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_id(gid, nwg);
    if (i >= P.rows * P.k) {
        return;
    }
    let r = i / P.k;
    let k = i - r * P.k;
    var v = 0.0;
    if (r >= first_active_row(ACTIVE[0])) {
        v = exp((X[i] - M[k]) * P.inv_eps);
    }
    Q[i] = v;
}
