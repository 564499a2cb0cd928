// Sinkhorn-Knopp over the scores X [rows, K]: rows = queue rows (first `queue_rows`) then the
// batch. ACTIVE[0] holds how many queue rows take part this step (0 until the queue is full,
// then all of them); inactive rows are skipped and get no codes. Sample-major layout: a row
// is a sample, a column a prototype (the official code works on the transpose).
//
// Q is never stored. With E = exp((X - M[k]) / eps) (M: per-prototype max over active rows,
// a factor that cancels in the first prototype normalisation), every Sinkhorn iterate is
// Q = diag(beta) E diag(alpha): the prototype normalisation sets alpha[k] = 1 / (K sum_r
// E[r,k] beta[r]) and the sample normalisation beta[r] = 1 / (B_s sum_k E[r,k] alpha[k]); the
// total-sum normalisation cancels in the first step. Each iteration is two read-only passes
// over X (stores cost several times more than loads on llvmpipe) and a final pass writes the
// batch's codes B_s * beta[b] * E[b,k] * alpha[k].
//
// V is vec4<f32> when K is a multiple of 4 (one load moves four prototypes) and f32 otherwise;
// P.kv is K / width. Every pass gives an invocation a block of ROW_BLOCK rows and either one
// V of prototypes ("column" passes: neighbouring invocations read neighbouring addresses) or
// a chunk of COL_CHUNK V's ("row" passes, partial per-sample sums per chunk).
alias V = {{V}};

fn hsum(v: V) -> f32 {
    {{HSUM}}
}

// world: the ranks of a data-parallel job, each holding `rows` of the global problem (the
// per-prototype sums are all-reduced between passes, see ops::sinkhorn::sinkhorn_steps);
// rescale: block_sum weighs the partial sums by exp((PM - M) / eps) (the first pass).
struct Params {
    rows: u32, kv: u32, queue_rows: u32, batch: u32,
    inv_eps: f32, blocks: u32, chunks: u32, k: f32,
    world: u32, rescale: u32, pad0: u32, pad1: u32,
}
@group(0) @binding(0) var<uniform> P: Params;

const ROW_BLOCK: u32 = 64u;
const COL_CHUNK: u32 = 8u;

fn first_active_row(active_rows: f32) -> u32 {
    return P.queue_rows - min(u32(active_rows), P.queue_rows);
}

// The active rows [x, y) of row block `block` (column passes).
fn block_rows(block: u32, active_rows: f32) -> vec2<u32> {
    return vec2<u32>(max(block * ROW_BLOCK, first_active_row(active_rows)), min((block + 1u) * ROW_BLOCK, P.rows));
}

// Samples taking part: the batch plus the active queue rows on every rank (the official B_s).
fn samples(active_rows: f32) -> f32 {
    return f32(P.world * (P.batch + min(u32(active_rows), P.queue_rows)));
}
