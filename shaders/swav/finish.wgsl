// Codes of the batch: the last `batch` rows, times B_s so each sample's codes sum to 1.
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> CODES: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_id(gid, nwg);
    if (i < P.batch * P.k) {
        CODES[i] = Q[P.queue_rows * P.k + i] * samples(ACTIVE[0]);
    }
}
