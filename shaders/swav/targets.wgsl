// Swapped-prediction targets: row r (crop v = r / B, sample b = r % B) of T gets the codes of
// every assignment crop other than v: T[r, k] = sum_i [v != c_i] Q_i[b, k]. Cross-entropy is
// linear in its targets, so CE(scores, T) sums the official per-pair terms.
struct Params {
    rows: u32, k: u32, batch: u32, n_assign: u32,
    c0: u32, c1: u32, c2: u32, c3: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> CODES: array<f32>; // [n_assign, batch, k]
@group(0) @binding(2) var<storage, read_write> T: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= P.rows * P.k) {
        return;
    }
    let r = i / P.k;
    let k = i - r * P.k;
    let crop = r / P.batch;
    let b = r - crop * P.batch;
    let assign = array<u32, 4>(P.c0, P.c1, P.c2, P.c3);
    var t = 0.0;
    for (var a = 0u; a < P.n_assign; a++) {
        if (assign[a] != crop) {
            t += CODES[(a * P.batch + b) * P.k + k];
        }
    }
    T[i] = t;
}
