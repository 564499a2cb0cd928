// dX = (dY - y * <dY, y>) / ||X|| with y = X / ||X|| (when ||X|| > eps; else dY / eps).
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

// One row (see main in rows/common.wgsl): invocation lid of 64, the row, its first element.
fn row_kernel(lid: u32, row: u32, base: u32) {
    var s = 0.0;
    var d = 0.0;
    for (var j = lid; j < P.cols; j += WG) {
        let v = X[base + j];
        s += v * v;
        d += v * DY[base + j];
    }
    let norm = sqrt(wg_sum(lid, s));
    let dot = wg_sum(lid, d);
    if (norm <= P.eps) {
        for (var j = lid; j < P.cols; j += WG) {
            DX[base + j] = DY[base + j] / P.eps;
        }
        return;
    }
    let inv = 1.0 / norm;
    // <dY, y> = <dY, X> / norm, and y = X / norm.
    let coef = dot * inv * inv * inv;
    for (var j = lid; j < P.cols; j += WG) {
        DX[base + j] = DY[base + j] * inv - X[base + j] * coef;
    }
}
