// From the output Y: dX = scale * (dY - exp(Y) * sum(dY)).
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

// One row (see main in rows/common.wgsl): invocation lid of 64, the row, its first element.
fn row_kernel(lid: u32, row: u32, base: u32) {
    var d = 0.0;
    for (var j = lid; j < P.cols; j += WG) {
        d += DY[base + j];
    }
    let total = wg_sum(lid, d);
    for (var j = lid; j < P.cols; j += WG) {
        DX[base + j] = P.scale * (DY[base + j] - exp(Y[base + j]) * total);
    }
}
