// Weight gradient of a conv with unit x-stride on software adapters with subgroups:
// dW[o, c, r, s] = sum_{b, oy, ox} dY[b, o, oy, ox] * X[b, c, oy*sh - ph + r, ox - pw + s].
// A workgroup is one subgroup: it owns TM output channels o (dY rows, shared as in
// gemm_subgroup_tiled.wgsl: each lane loads rows lane, lane + SG, ... and broadcasts), and
// each lane owns one input channel c with all KH x KW taps. The reduction walks segments of
// TP pixels of one output row: per segment a lane gathers KH rows of TP + KW - 1 input
// pixels once and uses each for every tap, where the implicit GEMM gathers TP * KH * KW;
// dY comes as vec4s (OW is a multiple of TP, TP of 4). Split-K: workgroup z sums segments
// [z * seg_chunk, ...) into its own slab; a reduce pass adds the slabs.
// X and dY are stored as ACT (f32 or f16 activations); dW and the sums are f32.
// The {{...}} blocks are unrolled by ops/conv/rows.rs.
struct Params {
    cout: u32, cin: u32, h: u32, w: u32,
    oh: u32, ow: u32, sh: u32, ph: i32,
    pw: i32, segs: u32, n_seg: u32, seg_chunk: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
alias ACT = {{ACT}};
@group(0) @binding(1) var<storage, read> X: array<ACT>;
@group(0) @binding(2) var<storage, read> DY: array<vec4<ACT>>;
@group(0) @binding(3) var<storage, read_write> DW: array<f32>;

@compute @workgroup_size({{SG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * {{TM}}u;
    // No early return: every lane must reach the broadcasts. A lane past the last channel
    // computes a clamped copy and stores nothing.
    let c_id = wid.x * {{SG}}u + lid.x;
    let c = min(c_id, P.cin - 1u);
    let split = wid.z;
    let seg_begin = split * P.seg_chunk;
    let seg_end = min(seg_begin + P.seg_chunk, P.n_seg);
    let ow4 = P.ow / 4u;
{{SETUP}}
    for (var seg = seg_begin; seg < seg_end; seg++) {
        let per_image = P.oh * P.segs;
        let b = seg / per_image;
        let rem = seg - b * per_image;
        let oy = rem / P.segs;
        let ox0 = (rem - oy * P.segs) * {{TP}}u;
        let x_chan = (b * P.cin + c) * P.h;
        let iy0 = i32(oy * P.sh) - P.ph;
        let ix0 = i32(ox0) - P.pw;
        // dY vec4 index of (b, o, oy, ox0) is dy_img + o * oh * ow4.
        let dy_img = (b * P.cout * P.oh + oy) * ow4 + ox0 / 4u;
{{BODY}}
    }
{{STORE}}
}
