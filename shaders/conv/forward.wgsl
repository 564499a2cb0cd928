// Loader: conv2d forward as an implicit GEMM (no im2col buffer).
// Y[b, co, oy, ox] = sum_{c, r, s} W[co, c, r, s] * X[b, c, oy*sh - ph + r, ox*sw - pw + s]
// M = Cout, N = batch*OH*OW, K = Cin*KH*KW. X and Y are stored as {{ACT}} (f32 or f16
// activations; the GEMM accumulates in f32), W is f32.
@group(0) @binding(1) var<storage, read> X: array<{{ACT}}>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<{{ACT}}>;

alias RowCtx = u32; // co * K: start of the weight row
struct KCtx { c_off: u32, r: i32, s: i32, k: u32 }
struct ColCtx { base: u32, iy0: i32, ix0: i32 }

fn row_ctx(m: u32) -> RowCtx { return m * P.k; }

fn k_ctx(k: u32) -> KCtx {
    let rs = P.kh * P.kw;
    let c = k / rs;
    let rem = k - c * rs;
    let r = rem / P.kw;
    return KCtx(c * P.h * P.w, i32(r), i32(rem - r * P.kw), k);
}

fn col_ctx(n: u32) -> ColCtx {
    let pq = P.oh * P.ow;
    let b = n / pq;
    let rem = n - b * pq;
    let oy = rem / P.ow;
    let ox = rem - oy * P.ow;
    return ColCtx(b * P.cin * P.h * P.w, i32(oy * P.sh) - i32(P.ph), i32(ox * P.sw) - i32(P.pw));
}

fn a_at(row: RowCtx, kc: KCtx) -> f32 { return W[row + kc.k]; }

// Branch-free: software adapters run a data-dependent branch as masked vector code, so the
// padding test is a select over a clamped (always in-bounds) load.
fn b_at(kc: KCtx, col: ColCtx) -> f32 {
    let iy = col.iy0 + kc.r;
    let ix = col.ix0 + kc.s;
    let inside = (iy >= 0) & (iy < i32(P.h)) & (ix >= 0) & (ix < i32(P.w));
    let at = u32(clamp(iy, 0, i32(P.h) - 1)) * P.w + u32(clamp(ix, 0, i32(P.w) - 1));
    return select(0.0, f32(X[col.base + kc.c_off + at]), inside);
}

fn c_store(split: u32, m: u32, n: u32, v: f32) {
    let pq = P.oh * P.ow;
    let b = n / pq;
    Y[(b * P.cout + m) * pq + (n - b * pq)] = {{ACT}}(v);
}
