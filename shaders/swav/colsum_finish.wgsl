// U[k] = sum over blocks of PU[block, k]: the per-prototype sums.
@group(0) @binding(1) var<storage, read> PU: array<f32>;
@group(0) @binding(2) var<storage, read_write> U: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= P.k) {
        return;
    }
    var s = 0.0;
    for (var b = 0u; b < P.blocks; b++) {
        s += PU[b * P.k + k];
    }
    U[k] = s;
}
