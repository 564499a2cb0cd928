// M[k] = max over blocks of PM[block, k].
@group(0) @binding(1) var<storage, read> PM: array<f32>;
@group(0) @binding(2) var<storage, read_write> M: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= P.k) {
        return;
    }
    var m = -0x1.fffffep+127f;
    for (var b = 0u; b < P.blocks; b++) {
        m = max(m, PM[b * P.k + k]);
    }
    M[k] = m;
}
