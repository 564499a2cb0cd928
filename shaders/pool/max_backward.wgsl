// Max-pool backward as a gather: each input element sums dY over the windows that chose it.
@group(0) @binding(1) var<storage, read> DY: array<ACT>;
@group(0) @binding(2) var<storage, read> ARGMAX: array<u32>;
@group(0) @binding(3) var<storage, read_write> DX: array<ACT>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let per_plane = P.h * P.w;
    if (i >= P.planes * per_plane) {
        return;
    }
    let plane = i / per_plane;
    let at = i - plane * per_plane;
    let y = i32(at / P.w);
    let x = i32(at % P.w);
    // Windows oy with oy*sh - ph <= y <= oy*sh - ph + kh - 1.
    let oy_lo = max(0, (y + i32(P.ph) - i32(P.kh) + i32(P.sh)) / i32(P.sh));
    let oy_hi = min(i32(P.oh) - 1, (y + i32(P.ph)) / i32(P.sh));
    let ox_lo = max(0, (x + i32(P.pw) - i32(P.kw) + i32(P.sw)) / i32(P.sw));
    let ox_hi = min(i32(P.ow) - 1, (x + i32(P.pw)) / i32(P.sw));
    var acc = 0.0;
    let obase = plane * P.oh * P.ow;
    for (var oy = oy_lo; oy <= oy_hi; oy++) {
        for (var ox = ox_lo; ox <= ox_hi; ox++) {
            let o = obase + u32(oy) * P.ow + u32(ox);
            if (ARGMAX[o] == at) {
                acc += f32(DY[o]);
            }
        }
    }
    DX[i] = ACT(acc);
}
