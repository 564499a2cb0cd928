// Y = X / max(||X||, eps) per row (torch.nn.functional.normalize).
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

// One row (see main in rows/common.wgsl): invocation lid of 64, the row, its first element.
fn row_kernel(lid: u32, row: u32, base: u32) {
    var s = 0.0;
    for (var j = lid; j < P.cols; j += WG) {
        let v = X[base + j];
        s += v * v;
    }
    let inv = 1.0 / max(sqrt(wg_sum(lid, s)), P.eps);
    for (var j = lid; j < P.cols; j += WG) {
        Y[base + j] = X[base + j] * inv;
    }
}
