// Loader: conv2d gradient w.r.t. the input as an implicit GEMM (a gather, so no atomics).
// dX[b, c, y, x] = sum_{co, r, s} W[co, c, r, s] * dY[b, co, (y + ph - r)/sh, (x + pw - s)/sw]
// where the division is exact and in range. M = Cin, N = batch*H*W, K = Cout*KH*KW.
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

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

fn b_at(kc: KCtx, col: ColCtx) -> f32 {
    var oy = col.yp - kc.r;
    var ox = col.xp - kc.s;
    if (oy < 0 || ox < 0) {
        return 0.0;
    }
    if (P.sh != 1u || P.sw != 1u) {
        if (u32(oy) % P.sh != 0u || u32(ox) % P.sw != 0u) {
            return 0.0;
        }
        oy = oy / i32(P.sh);
        ox = ox / i32(P.sw);
    }
    if (oy >= i32(P.oh) || ox >= i32(P.ow)) {
        return 0.0;
    }
    return DY[col.base + kc.dy_off + u32(oy) * P.ow + u32(ox)];
}

fn c_store(split: u32, m: u32, n: u32, v: f32) {
    let hw = P.h * P.w;
    let b = n / hw;
    DX[(b * P.cin + m) * hw + (n - b * hw)] = v;
}
