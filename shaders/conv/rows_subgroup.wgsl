// Direct convolution along output rows, for convs with unit x-stride on software adapters
// with subgroups: Y[b, o, oy, ox] = sum_{c, r, s} Wt(o, c, r, s) * X[b, c, oy*sh - ph + r, ox - pw + s].
// A workgroup is one subgroup; it owns TM output channels (rows, shared as in
// gemm_subgroup_tiled.wgsl: each lane loads rows lane, lane + SG, ... and broadcasts) and
// each lane owns a segment of TN consecutive pixels of one output row. Why: for each (c, r)
// a lane gathers the TN + KW - 1 input pixels its segment reads once and uses each for all
// KW taps, where the implicit GEMM gathers TN * KW; and the padding masks of the segment's
// columns are computed once, not per tap. Weights are read through strides so the same
// kernel computes backward-input (the flipped, transposed kernel over dY).
// X and Y are stored as ACT (f32 or f16 activations; accumulation is f32).
// The {{...}} blocks are unrolled by ops/conv/rows.rs.
struct Params {
    m: u32, cin: u32, h: u32, w: u32,
    oh: u32, ow: u32, sh: u32, ph: i32,
    pw: i32, kh: u32, segs: u32, n_seg: u32,
    // Weight index of (o, c, r, s) = w_base + o*w_row + c*w_chan + r*w_r + s*w_s.
    w_base: i32, w_row: i32, w_chan: i32, w_r: i32,
    w_s: i32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
alias ACT = {{ACT}};
@group(0) @binding(1) var<storage, read> X: array<ACT>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<ACT>;

@compute @workgroup_size({{SG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * {{TM}}u;
    // No early return: every lane must reach the broadcasts. Lanes past the last segment
    // compute a clamped copy and store nothing.
    let seg_id = wid.x * {{SG}}u + lid.x;
    let live = seg_id < P.n_seg;
    let seg = min(seg_id, P.n_seg - 1u);
    let per_image = P.oh * P.segs;
    let b = seg / per_image;
    let rem = seg - b * per_image;
    let oy = rem / P.segs;
    let ox0 = (rem - oy * P.segs) * {{TN}}u;
    let x_image = b * P.cin * P.h * P.w;
    let iy0 = i32(oy * P.sh) - P.ph;
    let ix0 = i32(ox0) - P.pw;
{{SETUP}}
    var c = 0u;
    var r = 0u;
    for (var step = 0u; step < P.cin * P.kh; step++) {
        let iy = iy0 + i32(r);
        let row_in = (iy >= 0) & (iy < i32(P.h));
        let x_row = x_image + (c * P.h + u32(clamp(iy, 0, i32(P.h) - 1))) * P.w;
        let w_cr = i32(c) * P.w_chan + i32(r) * P.w_r;
{{BODY}}
        // (c, r) advance odometer-style.
        let wrap = r + 1u == P.kh;
        c = select(c, c + 1u, wrap);
        r = select(r + 1u, 0u, wrap);
    }
{{STORE}}
}
