// dX. Training (batch statistics): gamma*rstd*(dY - dbeta/M - xhat*dgamma/M), M = batch*spatial.
// Eval (running statistics are constants): gamma*rstd*dY.
@group(0) @binding(1) var<storage, read> X: array<V>;
@group(0) @binding(2) var<storage, read> DY: array<V>;
@group(0) @binding(3) var<storage, read> MEAN: array<f32>;
@group(0) @binding(4) var<storage, read> VAR: array<f32>;
@group(0) @binding(5) var<storage, read> GAMMA: array<f32>;
@group(0) @binding(6) var<storage, read> DGAMMA: array<f32>;
@group(0) @binding(7) var<storage, read> DBETA: array<f32>;
@group(0) @binding(8) var<storage, read_write> DX: array<V>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= P.batch * P.channels * P.spatial / WIDTH) {
        return;
    }
    let c = (i * WIDTH / P.spatial) % P.channels;
    let rstd = inverseSqrt(VAR[c] + P.eps);
    let g = GAMMA[c] * rstd;
    if (P.training == 0u) {
        DX[i] = g * DY[i];
        return;
    }
    let inv_m = 1.0 / f32(P.batch * P.spatial);
    let xhat = (X[i] - MEAN[c]) * rstd;
    DX[i] = g * (DY[i] - DBETA[c] * inv_m - xhat * DGAMMA[c] * inv_m);
}
