// Y = X / max(||X||, eps) per row (torch.nn.functional.normalize).
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
