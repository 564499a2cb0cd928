// Codes of the batch: the last `batch` rows, times B_s so each sample's codes sum to 1.
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> CODES: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let block = gid.y;
    if (k >= P.k) {
        return;
    }
    let bs = samples(ACTIVE[0]);
    for (var b = block * ROW_BLOCK; b < min((block + 1u) * ROW_BLOCK, P.batch); b++) {
        CODES[b * P.k + k] = Q[(P.queue_rows + b) * P.k + k] * bs;
    }
}
