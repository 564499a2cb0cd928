// beta[r] = 1 / (B_s * sum over chunks of PV[r, chunk]): the sample normalisation (0 for
// inactive rows and for a row whose every exp() underflowed).
@group(0) @binding(1) var<storage, read> PV: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> BETA: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= P.rows) {
        return;
    }
    var s = 0.0;
    for (var c = 0u; c < P.chunks; c++) {
        s += PV[r * P.chunks + c];
    }
    let in_use = r >= first_active_row(ACTIVE[0]) && s > 0.0;
    BETA[r] = select(0.0, 1.0 / (s * samples(ACTIVE[0])), in_use);
}
