// Pooling geometry over planes = batch*channels of H x W (outputs OH x OW). ACT: the type
// activations are stored in (f32 or f16); the kernels compare and sum in f32.
alias ACT = {{ACT}};
struct Params {
    planes: u32, h: u32, w: u32, oh: u32,
    ow: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> P: Params;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
