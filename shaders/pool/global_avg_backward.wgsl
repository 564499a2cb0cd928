// Global average pool backward: dX[plane, :] = dY[plane] / (H*W).
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let hw = P.h * P.w;
    if (i >= P.planes * hw) {
        return;
    }
    DX[i] = DY[i / hw] / f32(hw);
}
