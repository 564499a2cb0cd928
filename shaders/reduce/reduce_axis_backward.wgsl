// Backward of reduce_axis, one invocation per element of X (no long per-invocation loops:
// llvmpipe caps the loop iterations one invocation may run at 65535 in total).
// max: the gradient goes to every element equal to the maximum (ties have measure zero for
// real data; PyTorch's amax splits it among them instead).
struct Params {
    outer: u32, reduce: u32, inner: u32, op: u32, // op: 0 sum, 1 mean, 2 max, 3 norm
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let at = gid.x + gid.y * nwg.x * 256u;
    if (at >= P.outer * P.reduce * P.inner) {
        return;
    }
    let i = at % P.inner;
    let o = at / (P.reduce * P.inner);
    let j = o * P.inner + i;
    let g = DY[j];
    var d = g;
    if (P.op == 1u) {
        d = g / f32(P.reduce);
    } else if (P.op == 2u) {
        d = select(0.0, g, X[at] == Y[j]);
    } else if (P.op == 3u) {
        d = select(0.0, g * X[at] / Y[j], Y[j] > 0.0);
    }
    DX[at] = d;
}
