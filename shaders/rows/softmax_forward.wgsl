// Y = softmax(scale * X) per row, shifted by the row maximum.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_id(wg, nwg);
    if (row >= P.rows) {
        return;
    }
    let base = row * P.cols;
    let row_max = scaled_row_max(lid, base);
    let inv = 1.0 / scaled_row_sum_exp(lid, base, row_max);
    for (var j = lid; j < P.cols; j += WG) {
        Y[base + j] = exp(P.scale * X[base + j] - row_max) * inv;
    }
}
