// Loader: conv2d gradient w.r.t. the input for stride 1 as an implicit GEMM (a gather, so
// no atomics): dX[b, c, y, x] = sum_{co, r, s} W[co, c, r, s] * dY[b, co, y + ph - r, x + pw - s]
// where in range. M = Cin, N = batch*H*W, K = Cout*KH*KW. Strided convs use
// backward_input_strided.wgsl.
@group(0) @binding(1) var<storage, read> DY: array<{{ACT}}>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<{{ACT}}>;

alias RowCtx = u32; // c * KH*KW
struct KCtx { w_off: u32, dy_off: u32, r: i32, s: i32 }
struct ColCtx { base: u32, yp: i32, xp: i32 }

fn row_ctx(m: u32) -> RowCtx { return m * P.kh * P.kw; }

fn k_ctx(k: u32) -> KCtx {
    let rs = P.kh * P.kw;
    let co = k / rs;
    let rem = k - co * rs;
    let r = rem / P.kw;
    let s = rem - r * P.kw;
    return KCtx(co * P.cin * rs + rem, co * P.oh * P.ow, i32(r), i32(s));
}

fn col_ctx(n: u32) -> ColCtx {
    let hw = P.h * P.w;
    let b = n / hw;
    let rem = n - b * hw;
    let y = rem / P.w;
    let x = rem - y * P.w;
    return ColCtx(b * P.cout * P.oh * P.ow, i32(y + P.ph), i32(x + P.pw));
}

fn a_at(row: RowCtx, kc: KCtx) -> f32 { return W[kc.w_off + row]; }

// Branch-free: a select over a clamped (always in-bounds) load, see forward.wgsl.
fn b_at(kc: KCtx, col: ColCtx) -> f32 {
    let oy = col.yp - kc.r;
    let ox = col.xp - kc.s;
    let inside = (oy >= 0) & (ox >= 0) & (oy < i32(P.oh)) & (ox < i32(P.ow));
    let at = u32(clamp(oy, 0, i32(P.oh) - 1)) * P.ow + u32(clamp(ox, 0, i32(P.ow) - 1));
    return select(0.0, f32(DY[col.base + kc.dy_off + at]), inside);
}

fn c_store(split: u32, m: u32, n: u32, v: f32) {
    let hw = P.h * P.w;
    let b = n / hw;
    DX[(b * P.cin + m) * hw + (n - b * hw)] = {{ACT}}(v);
}
