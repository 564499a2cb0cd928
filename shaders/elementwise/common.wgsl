// Shared by the elementwise kernels: one invocation per element over a linear (x, y) grid.
struct Params {
    len: u32, _p0: u32, alpha: f32, beta: f32,
}
@group(0) @binding(0) var<uniform> P: Params;

fn element_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
