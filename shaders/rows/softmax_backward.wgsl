// From the output Y: dX = scale * Y * (dY - <dY, Y>).
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_id(wg, nwg);
    if (row >= P.rows) {
        return;
    }
    let base = row * P.cols;
    var d = 0.0;
    for (var j = lid; j < P.cols; j += WG) {
        d += DY[base + j] * Y[base + j];
    }
    let dot = wg_sum(lid, d);
    for (var j = lid; j < P.cols; j += WG) {
        DX[base + j] = P.scale * Y[base + j] * (DY[base + j] - dot);
    }
}
