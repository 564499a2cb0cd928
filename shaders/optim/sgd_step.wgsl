// One SGD-with-momentum step on a parameter, optionally inside LARS as NVIDIA apex's LARC
// does it (trust coefficient, no clipping): with pn = ||p|| and gn = ||g|| over the whole
// tensor, if both are non-zero, g = (g + wd p) * trust pn / (gn + pn wd + eps); otherwise g
// is left as is (and gets no weight decay). Plain SGD: g = g + wd p. Then
// buf = momentum * buf + g; p -= lr * buf (buf starts at 0, so the first update is buf = g).
// OPT = [lr, prototypes_enabled]; a gated parameter (the prototypes) is left untouched, its
// momentum too, while OPT[1] == 0 (the first freeze_prototypes_niters iterations).
// Nothing is updated when the step's loss is NaN or infinite, so a diverged step leaves the
// parameters as they were for the trainer to diagnose and stop.
// With loss scaling (the `unscale` specialisation: the UNSCALE placeholder is " * OPT[6]",
// else empty) the gradient and its norm are unscaled by OPT[6] = 1/S, LARS's norms come from
// an earlier pass (every norm is checked before any parameter moves), and LOSS is the step's
// found_inf (0, or +inf when the loss or any gradient was not finite: check_finite.wgsl).
struct Params {
    len: u32, lars: u32, gated: u32, _p0: u32,
    weight_decay: f32, momentum: f32, trust: f32, eps: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> GRAD: array<f32>;
@group(0) @binding(2) var<storage, read> PNORM: array<f32>;
@group(0) @binding(3) var<storage, read> GNORM: array<f32>;
@group(0) @binding(4) var<storage, read> OPT: array<f32>;
@group(0) @binding(5) var<storage, read> LOSS: array<f32>;
@group(0) @binding(6) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(7) var<storage, read_write> MOMENTUM: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (skip_update(i, P.len, P.gated, OPT[1], LOSS[0])) {
        return;
    }
    let p = PARAM[i];
    var g = GRAD[i]{{UNSCALE}};
    if (P.lars != 0u) {
        let pn = PNORM[0];
        let gn = GNORM[0]{{UNSCALE}};
        if (pn != 0.0 && gn != 0.0) {
            let adaptive_lr = P.trust * pn / (gn + pn * P.weight_decay + P.eps);
            g = (g + P.weight_decay * p) * adaptive_lr;
        }
    } else {
        g = g + P.weight_decay * p;
    }
    let buf = P.momentum * MOMENTUM[i] + g;
    MOMENTUM[i] = buf;
    PARAM[i] = p - OPT[0] * buf;
}
