// Column pass: PM[block, k] = max of X[r, k] over the block's active rows (the per-prototype
// shift that keeps exp() finite in f32; a per-prototype factor cancels in the first
// prototype normalisation).
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> ACTIVE: array<f32>;
@group(0) @binding(3) var<storage, read_write> PM: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let block = gid.y;
    if (k >= P.k) {
        return;
    }
    let r0 = max(block * ROW_BLOCK, first_active_row(ACTIVE[0]));
    let r1 = min((block + 1u) * ROW_BLOCK, P.rows);
    var m = -0x1.fffffep+127f;
    for (var r = r0; r < r1; r++) {
        m = max(m, X[r * P.k + k]);
    }
    PM[block * P.k + k] = m;
}
