// Sinkhorn-Knopp over Q [rows, K]: rows = queue rows (first `queue_rows`) then the batch.
// ACTIVE[0] holds how many queue rows take part this step (0 until the queue is full, then
// all of them); inactive rows are ignored and end as zeros. Sample-major layout: a row is a
// sample, a column a prototype (the official code works on the transpose).
//
// Layout of the work, for llvmpipe as much as for GPUs: "column" passes give each invocation
// one prototype k and a block of ROW_BLOCK rows (neighbouring invocations read neighbouring
// addresses; partial per-prototype sums per block), "row" passes give each invocation one
// row and a chunk of COL_CHUNK prototypes (partial per-sample sums per chunk). No integer
// division per element and few, fat workgroups.
struct Params {
    rows: u32, k: u32, queue_rows: u32, batch: u32,
    inv_eps: f32, blocks: u32, chunks: u32, first: u32,
}
@group(0) @binding(0) var<uniform> P: Params;

const ROW_BLOCK: u32 = 64u;
const COL_CHUNK: u32 = 64u;

fn first_active_row(active_rows: f32) -> u32 {
    return P.queue_rows - min(u32(active_rows), P.queue_rows);
}

// Samples taking part: the batch plus the active queue rows (the official B_s).
fn samples(active_rows: f32) -> f32 {
    return f32(P.batch + min(u32(active_rows), P.queue_rows));
}
