// dX = scale * dL[row] * (softmax(scale * X) * sum(Q) - Q). No gradient flows to Q.
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Q: array<f32>;
@group(0) @binding(3) var<storage, read> DLOSS: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;

// One row (see main in rows/common.wgsl): invocation lid of 64, the row, its first element.
fn row_kernel(lid: u32, row: u32, base: u32) {
    let row_max = scaled_row_max(lid, base);
    let inv = 1.0 / scaled_row_sum_exp(lid, base, row_max);
    var qsum = 0.0;
    for (var j = lid; j < P.cols; j += WG) {
        qsum += Q[base + j];
    }
    let total_q = wg_sum(lid, qsum);
    let g = P.scale * DLOSS[row];
    for (var j = lid; j < P.cols; j += WG) {
        let p = exp(P.scale * X[base + j] - row_max) * inv;
        DX[base + j] = g * (p * total_q - Q[base + j]);
    }
}
