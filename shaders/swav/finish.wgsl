// Codes of the batch (the last `batch` rows): B_s * beta[r] * E[r, k] * alpha[k], so each
// sample's codes sum to 1 (E * alpha = exp((X - S) / eps), see shift.wgsl). Laid out as the
// row passes: a chunk of prototypes (shifts in registers) over a block of rows.
@group(0) @binding(1) var<storage, read> X: array<V>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<V>;
@group(0) @binding(4) var<storage, read> BETA: array<f32>;
@group(0) @binding(5) var<storage, read_write> CODES: array<V>;

@compute @workgroup_size(32, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let chunk = gid.x;
    let block = gid.y;
    if (chunk >= P.chunks) {
        return;
    }
    let k0 = chunk * COL_CHUNK;
    let n = min(COL_CHUNK, P.kv - k0);
    var shift: array<V, COL_CHUNK>;
    for (var j = 0u; j < COL_CHUNK; j++) {
        shift[j] = S[min(k0 + j, P.kv - 1u)];
    }
    let bs = samples(ACTIVE[0]);
    for (var b = block * ROW_BLOCK; b < min((block + 1u) * ROW_BLOCK, P.batch); b++) {
        let r = P.queue_rows + b;
        let scale = bs * BETA[r];
        if (n == COL_CHUNK) {
            for (var j = 0u; j < COL_CHUNK; j++) {
                CODES[b * P.kv + k0 + j] = exp((X[r * P.kv + k0 + j] - shift[j]) * P.inv_eps) * scale;
            }
        } else {
            for (var j = 0u; j < n; j++) {
                CODES[b * P.kv + k0 + j] = exp((X[r * P.kv + k0 + j] - shift[j]) * P.inv_eps) * scale;
            }
        }
    }
}
