// Sinkhorn-Knopp over P [rows, K]: rows = queue rows (first `queue_rows`) then the batch.
// ACTIVE[0] holds how many queue rows take part this step (0 until the queue is full, then
// all of them); inactive rows are ignored and end as zeros. Sample-major layout: a row is a
// sample, a column a prototype (the official code works on the transpose, Q = P^T).
struct Params {
    rows: u32, k: u32, queue_rows: u32, batch: u32,
    inv_eps: f32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> P: Params;

fn first_active_row(active_rows: f32) -> u32 {
    return P.queue_rows - min(u32(active_rows), P.queue_rows);
}

// Samples taking part: the batch plus the active queue rows (the official B_s).
fn samples(active_rows: f32) -> f32 {
    return f32(P.batch + min(u32(active_rows), P.queue_rows));
}

fn element_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
