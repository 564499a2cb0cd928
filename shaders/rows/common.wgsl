// Row-wise kernels over X viewed as [rows, cols], one 64-invocation workgroup per row.
struct Params {
    rows: u32, cols: u32, scale: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> P: Params;

fn row_id(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}
