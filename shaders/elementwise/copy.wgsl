// Y[dst_offset + i] = X[src_offset + i] for i < len: row slices and concatenation along the
// batch axis (multi-crop groups), and their backward.
struct CopyParams {
    len: u32, src_offset: u32, dst_offset: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> CP: CopyParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < CP.len) {
        Y[CP.dst_offset + i] = X[CP.src_offset + i];
    }
}
