// Loss scaling's overflow check (torch.amp.GradScaler's found_inf): FOUND[0], 0 when the step
// starts, becomes +inf (bits 0x7f800000) once any element of X is NaN or infinite; the update
// kernels, which skip when it is not finite, then leave every parameter and its state as they
// were. Run on the loss, on every gradient and on LARS's gradient norms before any parameter
// moves. The test reads the bits (`is_finite`): WGSL has no isnan / isinf, and x != x may be
// folded away. A clean workgroup writes nothing; a dirty one does one u32 atomicOr.
struct Params {
    len: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> FOUND: array<atomic<u32>>;

var<workgroup> dirty: atomic<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = gid.x + gid.y * nwg.x * 256u;
    // Workgroup memory starts undefined (pipelines skip its zeroing).
    if (lid == 0u) {
        atomicStore(&dirty, 0u);
    }
    workgroupBarrier();
    if (i < P.len && !is_finite(X[i])) {
        atomicStore(&dirty, 1u);
    }
    workgroupBarrier();
    if (lid == 0u && atomicLoad(&dirty) != 0u) {
        atomicOr(&FOUND[0], 0x7f800000u);
    }
}
