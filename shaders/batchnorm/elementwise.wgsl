// The entry point of the per-element batch-norm kernels (apply, backward_input): one
// invocation per V, each kernel an element(i, c, rstd) reading its own VAR binding.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= P.batch * P.channels * P.spatial / WIDTH) {
        return;
    }
    let c = (i * WIDTH / P.spatial) % P.channels;
    element(i, c, inverseSqrt(VAR[c] + P.eps));
}
