// Per channel: dbeta = sum(dY), dgamma = sum(dY * xhat), one workgroup per channel.
// Where the plan fused the following ReLU, DY holds the gradient of relu(Y) (MASK): dY is
// masked as it is read (0 where relu(Y) = 0, as ReLU-backward would) and written back in
// place for backward_input, so ReLU-backward's pass and output tensor go. (In place, not in
// backward_input, because that kernel already uses WebGPU's 8 storage bindings.)
@group(0) @binding(1) var<storage, read> X: array<S>;
@group(0) @binding(2) var<storage, {{DY_ACCESS}}> DY: array<S>;
@group(0) @binding(3) var<storage, read> MEAN: array<f32>;
@group(0) @binding(4) var<storage, read> VAR: array<f32>;
@group(0) @binding(5) var<storage, read_write> DGAMMA: array<f32>;
@group(0) @binding(6) var<storage, read_write> DBETA: array<f32>;
{{MASK_BINDING}}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let c = wg.x;
    let count = P.batch * P.spatial;
    let mean = MEAN[c];
    let rstd = inverseSqrt(VAR[c] + P.eps);
    var sdy = 0.0;
    var sdyx = 0.0;
    for (var i = lid; i < count / WIDTH; i += WG) {
        let o = channel_offset(c, i);
        {{LOAD_DY}}
        sdy += hsum(dy);
        sdyx += hsum(dy * (V(X[o]) - mean) * rstd);
    }
    let total_dy = wg_sum(lid, sdy);
    let total_dyx = wg_sum(lid, sdyx);
    if (lid == 0u) {
        DBETA[c] = total_dy;
        DGAMMA[c] = total_dyx;
    }
}
