// Training-mode statistics, one workgroup per channel: mean, then the biased variance from
// a second pass over (x - mean) (more accurate than E[x^2] - mean^2). Running stats move
// with `momentum` towards the mean and the *unbiased* variance, as PyTorch does.
@group(0) @binding(1) var<storage, read> X: array<S>;
@group(0) @binding(2) var<storage, read_write> MEAN: array<f32>;
@group(0) @binding(3) var<storage, read_write> VAR: array<f32>;
@group(0) @binding(4) var<storage, read_write> RUN_MEAN: array<f32>;
@group(0) @binding(5) var<storage, read_write> RUN_VAR: array<f32>;

// Synchronised batch-norm runs it in stages with an all-reduce (mean over the ranks) after
// stages 1 and 2: stage 1 writes this rank's mean, stage 2 this rank's mean of (x - MEAN)^2
// around the global MEAN, stage 3 only moves the running stats (count: every rank's values).
// Stage 0 is all of it on one rank.
const ALL: u32 = 0u;
const MEAN_ONLY: u32 = 1u;
const VAR_ONLY: u32 = 2u;
const RUNNING_ONLY: u32 = 3u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let c = wg.x;
    let count = P.batch * P.spatial;
    let count_v = count / WIDTH;
    var mean = 0.0;
    if (P.stage == ALL || P.stage == MEAN_ONLY) {
        var s = 0.0;
        for (var i = lid; i < count_v; i += WG) {
            s += hsum(V(X[channel_offset(c, i)]));
        }
        mean = wg_sum(lid, s) / f32(count);
        if (P.stage == MEAN_ONLY) {
            if (lid == 0u) {
                MEAN[c] = mean;
            }
            return;
        }
    } else {
        mean = MEAN[c];
    }
    var var_biased = 0.0;
    if (P.stage == RUNNING_ONLY) {
        var_biased = VAR[c];
    } else {
        var s2 = 0.0;
        for (var i = lid; i < count_v; i += WG) {
            let d = V(X[channel_offset(c, i)]) - mean;
            s2 += hsum(d * d);
        }
        var_biased = wg_sum(lid, s2) / f32(count);
    }
    if (lid == 0u) {
        if (P.stage != RUNNING_ONLY) {
            MEAN[c] = mean;
            VAR[c] = var_biased;
        }
        if (P.update_running != 0u && P.stage != VAR_ONLY) {
            let n = f32(count * P.world);
            let unbiased = var_biased * n / (n - 1.0);
            RUN_MEAN[c] = (1.0 - P.momentum) * RUN_MEAN[c] + P.momentum * mean;
            RUN_VAR[c] = (1.0 - P.momentum) * RUN_VAR[c] + P.momentum * unbiased;
        }
    }
}
