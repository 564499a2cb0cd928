// Y = (X - mean) / sqrt(var + eps) * gamma + beta, per channel (then max(Y, 0) when P.relu:
// the plan fuses a following ReLU here, saving a pass over the tensor). Training passes the
// batch statistics, eval the running ones.
@group(0) @binding(1) var<storage, read> X: array<S>;
@group(0) @binding(2) var<storage, read> MEAN: array<f32>;
@group(0) @binding(3) var<storage, read> VAR: array<f32>;
@group(0) @binding(4) var<storage, read> GAMMA: array<f32>;
@group(0) @binding(5) var<storage, read> BETA: array<f32>;
@group(0) @binding(6) var<storage, read_write> Y: array<S>;

// One V (see main in batchnorm/elementwise.wgsl): its index, channel, 1/sqrt(var + eps).
fn element(i: u32, c: u32, rstd: f32) {
    let y = (V(X[i]) - MEAN[c]) * rstd * GAMMA[c] + BETA[c];
    if (P.relu != 0u) {
        Y[i] = S(max(y, V(0.0)));
    } else {
        Y[i] = S(y);
    }
}
