// Cross-entropy against soft targets, per row: L = -sum_k Q[k] * log_softmax(scale * X)[k]
//   = lse * sum(Q) - scale * <Q, X>, lse = logsumexp(scale * X). (The swapped SwAV loss.)
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Q: array<f32>;
@group(0) @binding(3) var<storage, read_write> LOSS: array<f32>;

// One row (see main in rows/common.wgsl): invocation lid of 64, the row, its first element.
fn row_kernel(lid: u32, row: u32, base: u32) {
    let row_max = scaled_row_max(lid, base);
    let lse = row_max + log(scaled_row_sum_exp(lid, base, row_max));
    var qsum = 0.0;
    var qx = 0.0;
    for (var j = lid; j < P.cols; j += WG) {
        let q = Q[base + j];
        qsum += q;
        qx += q * (P.scale * X[base + j]);
    }
    let total_q = wg_sum(lid, qsum);
    let total_qx = wg_sum(lid, qx);
    if (lid == 0u) {
        LOSS[row] = lse * total_q - total_qx;
    }
}
