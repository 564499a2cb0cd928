// Y = (X - mean) / sqrt(var + eps) * gamma + beta, per channel (then max(Y, 0) when P.relu:
// the plan fuses a following ReLU here, saving a pass over the tensor). Training passes the
// batch statistics, eval the running ones.
@group(0) @binding(1) var<storage, read> X: array<V>;
@group(0) @binding(2) var<storage, read> MEAN: array<f32>;
@group(0) @binding(3) var<storage, read> VAR: array<f32>;
@group(0) @binding(4) var<storage, read> GAMMA: array<f32>;
@group(0) @binding(5) var<storage, read> BETA: array<f32>;
@group(0) @binding(6) var<storage, read_write> Y: array<V>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= P.batch * P.channels * P.spatial / WIDTH) {
        return;
    }
    let c = (i * WIDTH / P.spatial) % P.channels;
    let rstd = inverseSqrt(VAR[c] + P.eps);
    let y = (X[i] - MEAN[c]) * rstd * GAMMA[c] + BETA[c];
    if (P.relu != 0u) {
        Y[i] = max(y, V(0.0));
    } else {
        Y[i] = y;
    }
}
