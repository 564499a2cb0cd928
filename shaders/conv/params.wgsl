// Conv geometry shared by the three implicit-GEMM loaders (NCHW, weights [Cout, Cin, KH, KW]).
struct Params {
    m: u32, n: u32, k: u32, k_chunk: u32,
    batch: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, oh: u32,
    ow: u32, ty: u32, tx: u32, hy: u32,
    // Strided backward-input, one phase (py, px) of the input pixels at a time: taps
    // r = r0 + sh*t (t < ty), s = s0 + sw*u (u < tx), hy x wx pixels, output offsets qy, qx.
    wx: u32, py: u32, px: u32, r0: u32,
    s0: u32, qy: u32, qx: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
