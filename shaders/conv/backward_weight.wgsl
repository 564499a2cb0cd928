// Loader: conv2d gradient w.r.t. the weights as an implicit GEMM with optional split-K
// (each split writes its own partial slab; a reduce pass sums them: no atomics).
// dW[co, c, r, s] = sum_{b, oy, ox} dY[b, co, oy, ox] * X[b, c, oy*sh - ph + r, ox*sw - pw + s]
// M = Cout, N = Cin*KH*KW, K = batch*OH*OW. X and dY are stored as {{ACT}}; dW (and its
// split-K slabs) are f32.
@group(0) @binding(1) var<storage, read> X: array<{{ACT}}>;
@group(0) @binding(2) var<storage, read> DY: array<{{ACT}}>;
@group(0) @binding(3) var<storage, read_write> DW: array<f32>;

alias RowCtx = u32; // co * OH*OW
struct KCtx { dy_off: u32, x_base: u32, iy0: i32, ix0: i32 }
struct ColCtx { c_off: u32, r: i32, s: i32 }

fn row_ctx(m: u32) -> RowCtx { return m * P.oh * P.ow; }

fn k_ctx(k: u32) -> KCtx {
    let pq = P.oh * P.ow;
    let b = k / pq;
    let rem = k - b * pq;
    let oy = rem / P.ow;
    let ox = rem - oy * P.ow;
    return KCtx(b * P.cout * pq + rem, b * P.cin * P.h * P.w,
                i32(oy * P.sh) - i32(P.ph), i32(ox * P.sw) - i32(P.pw));
}

fn col_ctx(n: u32) -> ColCtx {
    let rs = P.kh * P.kw;
    let c = n / rs;
    let rem = n - c * rs;
    let r = rem / P.kw;
    return ColCtx(c * P.h * P.w, i32(r), i32(rem - r * P.kw));
}

fn a_at(row: RowCtx, kc: KCtx) -> f32 { return f32(DY[kc.dy_off + row]); }

// Branch-free padding test (see forward.wgsl).
fn b_at(kc: KCtx, col: ColCtx) -> f32 {
    let iy = kc.iy0 + col.r;
    let ix = kc.ix0 + col.s;
    let inside = (iy >= 0) & (iy < i32(P.h)) & (ix >= 0) & (ix < i32(P.w));
    let at = u32(clamp(iy, 0, i32(P.h) - 1)) * P.w + u32(clamp(ix, 0, i32(P.w) - 1));
    return select(0.0, f32(X[kc.x_base + col.c_off + at]), inside);
}

fn c_store(split: u32, m: u32, n: u32, v: f32) {
    DW[(split * P.m + m) * P.n + n] = v;
}
