// Loader: conv2d gradient w.r.t. the input for strides > 1, one phase at a time. Of the
// input pixels y = py + sh*yy only the taps r = r0 + sh*t with r0 = (py + ph) mod sh reach
// an output row ((y + ph - r) must be a multiple of sh), and then that row is
// oy = yy + qy - t with qy = (py + ph - r0) / sh; likewise for x. So each of the sh*sw phases
// is a dense implicit GEMM with no wasted gathers and no division per element:
// M = Cin, N = batch*hy*wx (the phase's pixels), K = Cout*ty*tx (its taps).
@group(0) @binding(1) var<storage, read> DY: array<{{ACT}}>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<{{ACT}}>;

alias RowCtx = u32; // c * KH*KW
struct KCtx { w_off: u32, dy_off: u32, t: i32, u: i32 }
struct ColCtx { base: u32, oy: i32, ox: i32 }

fn row_ctx(m: u32) -> RowCtx { return m * P.kh * P.kw; }

fn k_ctx(k: u32) -> KCtx {
    let taps = P.ty * P.tx;
    let co = k / taps;
    let rem = k - co * taps;
    let t = rem / P.tx;
    let u = rem - t * P.tx;
    let w_off = co * P.cin * P.kh * P.kw + (P.r0 + P.sh * t) * P.kw + P.s0 + P.sw * u;
    return KCtx(w_off, co * P.oh * P.ow, i32(t), i32(u));
}

// Column n of the phase's GEMM -> (batch, yy, xx).
fn phase_pixel(n: u32) -> vec3<u32> {
    let hw = P.hy * P.wx;
    let b = n / hw;
    let rem = n - b * hw;
    let yy = rem / P.wx;
    return vec3<u32>(b, yy, rem - yy * P.wx);
}

fn col_ctx(n: u32) -> ColCtx {
    let p = phase_pixel(n);
    return ColCtx(p.x * P.cout * P.oh * P.ow, i32(p.y + P.qy), i32(p.z + P.qx));
}

fn a_at(row: RowCtx, kc: KCtx) -> f32 { return W[kc.w_off + row]; }

// Branch-free: a select over a clamped (always in-bounds) load, see forward.wgsl.
fn b_at(kc: KCtx, col: ColCtx) -> f32 {
    let oy = col.oy - kc.t;
    let ox = col.ox - kc.u;
    let inside = (oy >= 0) & (ox >= 0) & (oy < i32(P.oh)) & (ox < i32(P.ow));
    let at = u32(clamp(oy, 0, i32(P.oh) - 1)) * P.ow + u32(clamp(ox, 0, i32(P.ow) - 1));
    return select(0.0, f32(DY[col.base + kc.dy_off + at]), inside);
}

fn c_store(split: u32, m: u32, n: u32, v: f32) {
    let p = phase_pixel(n);
    DX[((p.x * P.cin + m) * P.h + P.py + P.sh * p.y) * P.w + P.px + P.sw * p.z] = {{ACT}}(v);
}
