// Row-wise kernels over X viewed as [rows, cols], one 64-invocation workgroup per row: each
// kernel is a row_kernel(lid, row, base) that this entry point calls for its workgroup's row.
struct Params {
    rows: u32, cols: u32, scale: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> P: Params;

fn row_id(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_id(wg, nwg);
    if (row >= P.rows) {
        return;
    }
    row_kernel(lid, row, row * P.cols);
}
