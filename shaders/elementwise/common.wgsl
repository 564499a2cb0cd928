// Shared by the elementwise kernels: one invocation per V over a linear (x, y) grid. V is
// vec4<f32> when the length is a multiple of 4 (a quarter of the invocations and of the
// lane-by-lane loads on llvmpipe), f32 otherwise; P.len counts V's. S is V as stored (f16
// components for f16 activations): reads convert to V, writes back to S.
alias V = {{V}};
alias S = {{S}};
struct Params {
    len: u32, relu: u32, alpha: f32, beta: f32,
}
@group(0) @binding(0) var<uniform> P: Params;

fn element_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
