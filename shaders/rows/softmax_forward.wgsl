// Y = softmax(scale * X) per row, shifted by the row maximum.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

// One row (see main in rows/common.wgsl): invocation lid of 64, the row, its first element.
fn row_kernel(lid: u32, row: u32, base: u32) {
    let row_max = scaled_row_max(lid, base);
    let inv = 1.0 / scaled_row_sum_exp(lid, base, row_max);
    for (var j = lid; j < P.cols; j += WG) {
        Y[base + j] = exp(P.scale * X[base + j] - row_max) * inv;
    }
}
