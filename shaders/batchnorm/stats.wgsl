// Training-mode statistics, one workgroup per channel: mean, then the biased variance from
// a second pass over (x - mean) (more accurate than E[x^2] - mean^2). Running stats move
// with `momentum` towards the mean and the *unbiased* variance, as PyTorch does.
@group(0) @binding(1) var<storage, read> X: array<V>;
@group(0) @binding(2) var<storage, read_write> MEAN: array<f32>;
@group(0) @binding(3) var<storage, read_write> VAR: array<f32>;
@group(0) @binding(4) var<storage, read_write> RUN_MEAN: array<f32>;
@group(0) @binding(5) var<storage, read_write> RUN_VAR: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let c = wg.x;
    let count = P.batch * P.spatial;
    let count_v = count / WIDTH;
    var s = 0.0;
    for (var i = lid; i < count_v; i += WG) {
        s += hsum(X[channel_offset(c, i)]);
    }
    let mean = wg_sum(lid, s) / f32(count);
    var s2 = 0.0;
    for (var i = lid; i < count_v; i += WG) {
        let d = X[channel_offset(c, i)] - mean;
        s2 += hsum(d * d);
    }
    let var_biased = wg_sum(lid, s2) / f32(count);
    if (lid == 0u) {
        MEAN[c] = mean;
        VAR[c] = var_biased;
        if (P.update_running != 0u) {
            let unbiased = var_biased * f32(count) / f32(count - 1u);
            RUN_MEAN[c] = (1.0 - P.momentum) * RUN_MEAN[c] + P.momentum * mean;
            RUN_VAR[c] = (1.0 - P.momentum) * RUN_VAR[c] + P.momentum * unbiased;
        }
    }
}
