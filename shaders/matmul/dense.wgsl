// Loader for a dense matmul C[M,N] = op(A) op(B) (+ bias[N]), op = optional transpose.
// A is [M,K] (or [K,M] when TRANS_A), B is [K,N] (or [N,K] when TRANS_B); all row-major.
struct Params {
    m: u32, n: u32, k: u32, k_chunk: u32,
    has_bias: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};

alias RowCtx = u32;
alias ColCtx = u32;
alias KCtx = u32;

fn row_ctx(m: u32) -> RowCtx { return m; }
fn col_ctx(n: u32) -> ColCtx { return n; }
fn k_ctx(k: u32) -> KCtx { return k; }

fn a_at(m: RowCtx, k: KCtx) -> f32 {
    if (TRANS_A) {
        return A[k * P.m + m];
    }
    return A[m * P.k + k];
}

fn b_at(k: KCtx, n: ColCtx) -> f32 {
    if (TRANS_B) {
        return B[n * P.k + k];
    }
    return B[k * P.n + n];
}

fn c_store(split: u32, m: u32, n: u32, v: f32) {
    var r = v;
    // Under split-K only the first slab carries the bias.
    if (P.has_bias != 0u && split == 0u) {
        r += BIAS[n];
    }
    C[(split * P.m + m) * P.n + n] = r;
}
