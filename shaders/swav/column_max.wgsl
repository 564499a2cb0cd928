// M[k] = max over the active rows of X[r, k]: the per-prototype shift that keeps exp() finite
// in f32 (a per-prototype factor cancels in the first prototype normalisation). One
// invocation per column, so neighbouring invocations read neighbouring addresses.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = element_id(gid, nwg);
    if (k >= P.k) {
        return;
    }
    var m = -3.4028235e38;
    for (var r = first_active_row(ACTIVE[0]); r < P.rows; r++) {
        m = max(m, X[r * P.k + k]);
    }
    M[k] = m;
}
