// dX. Training (batch statistics): gamma*rstd*(dY - dbeta/M - xhat*dgamma/M), M = batch*spatial.
// Eval (running statistics are constants): gamma*rstd*dY.
@group(0) @binding(1) var<storage, read> X: array<S>;
@group(0) @binding(2) var<storage, read> DY: array<S>;
@group(0) @binding(3) var<storage, read> MEAN: array<f32>;
@group(0) @binding(4) var<storage, read> VAR: array<f32>;
@group(0) @binding(5) var<storage, read> GAMMA: array<f32>;
@group(0) @binding(6) var<storage, read> DGAMMA: array<f32>;
@group(0) @binding(7) var<storage, read> DBETA: array<f32>;
@group(0) @binding(8) var<storage, read_write> DX: array<S>;

// One V (see main in batchnorm/elementwise.wgsl): its index, channel, 1/sqrt(var + eps).
fn element(i: u32, c: u32, rstd: f32) {
    let g = GAMMA[c] * rstd;
    if (P.training == 0u) {
        DX[i] = S(g * V(DY[i]));
        return;
    }
    // Synchronised batch-norm: DGAMMA and DBETA are the sums over every rank's values.
    let inv_m = 1.0 / f32(P.batch * P.spatial * P.world);
    let xhat = (V(X[i]) - MEAN[c]) * rstd;
    DX[i] = S(g * (V(DY[i]) - DBETA[c] * inv_m - xhat * DGAMMA[c] * inv_m));
}
