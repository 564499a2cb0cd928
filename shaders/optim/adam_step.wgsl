// One Adam step on a parameter (torch.optim.Adam: L2 weight decay added to the gradient,
// bias-corrected moments): g = g + wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr (m / c1) / (sqrt(v / c2) + eps), c1 = 1 - b1^t, c2 = 1 - b2^t. Adam's per-element scale gives
// every layer a useful step from the first iteration, which small-data SwAV needs (lightly's
// CIFAR recipe).
// OPT = [lr, prototypes_enabled, c1, c2, c1_prototypes, c2_prototypes]: the host computes the
// bias corrections in f64 (f32 pow(0.999, t) loses ~1e-4 of 1 - b2^t to rounding); a gated
// parameter (the prototypes) counts its steps from its unfreezing and is left untouched,
// moments too, while OPT[1] == 0. Nothing is updated when the step's loss is NaN or infinite.
// With loss scaling (the UNSCALE placeholder is " * OPT[6]", else empty) the gradient is
// unscaled by OPT[6] = 1/S and LOSS is the step's found_inf (0, or +inf: check_finite.wgsl).
struct Params {
    len: u32, gated: u32, _p0: u32, _p1: u32,
    weight_decay: f32, beta1: f32, beta2: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> GRAD: array<f32>;
@group(0) @binding(2) var<storage, read> OPT: array<f32>;
@group(0) @binding(3) var<storage, read> LOSS: array<f32>;
@group(0) @binding(4) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(5) var<storage, read_write> M1: array<f32>;
@group(0) @binding(6) var<storage, read_write> M2: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (skip_update(i, P.len, P.gated, OPT[1], LOSS[0])) {
        return;
    }
    let c1 = select(OPT[2], OPT[4], P.gated != 0u);
    let c2 = select(OPT[3], OPT[5], P.gated != 0u);
    let p = PARAM[i];
    let g = GRAD[i]{{UNSCALE}} + P.weight_decay * p;
    let m = P.beta1 * M1[i] + (1.0 - P.beta1) * g;
    let v = P.beta2 * M2[i] + (1.0 - P.beta2) * g * g;
    M1[i] = m;
    M2[i] = v;
    PARAM[i] = p - OPT[0] * (m / c1) / (sqrt(v / c2) + P.eps);
}
