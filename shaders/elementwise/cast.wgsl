// Y = X converted to Y's element type ({{FROM}} -> {{TO}}): the boundary between f16 storage
// and the f32 kernels. f32 -> f16 rounds to a neighbouring f16 (Vulkan lets a driver round to
// nearest even or toward zero); f16 -> f32 is exact. One invocation per element over a linear
// (x, y) grid.
enable f16;

struct CastParams {
    len: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> P: CastParams;
@group(0) @binding(1) var<storage, read> X: array<{{FROM}}>;
@group(0) @binding(2) var<storage, read_write> Y: array<{{TO}}>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < P.len) {
        Y[i] = {{TO}}(X[i]);
    }
}
