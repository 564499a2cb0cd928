// Max-pool forward, padding counts as -inf. Also stores the arg-max (index within the input
// plane, first maximum in scan order, as PyTorch) so the backward pass is a gather.
@group(0) @binding(1) var<storage, read> X: array<ACT>;
@group(0) @binding(2) var<storage, read_write> Y: array<ACT>;
@group(0) @binding(3) var<storage, read_write> ARGMAX: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let per_plane = P.oh * P.ow;
    if (i >= P.planes * per_plane) {
        return;
    }
    let plane = i / per_plane;
    let rem = i - plane * per_plane;
    let oy = rem / P.ow;
    let ox = rem - oy * P.ow;
    let base = plane * P.h * P.w;
    var best = -0x1.fffffep+127f;
    var best_at = 0u;
    var found = false;
    for (var r = 0u; r < P.kh; r++) {
        let iy = i32(oy * P.sh + r) - i32(P.ph);
        if (iy < 0 || iy >= i32(P.h)) {
            continue;
        }
        for (var s = 0u; s < P.kw; s++) {
            let ix = i32(ox * P.sw + s) - i32(P.pw);
            if (ix < 0 || ix >= i32(P.w)) {
                continue;
            }
            let at = u32(iy) * P.w + u32(ix);
            let v = f32(X[base + at]);
            if (!found || v > best) {
                best = v;
                best_at = at;
                found = true;
            }
        }
    }
    Y[i] = ACT(best);
    ARGMAX[i] = best_at;
}
