//! CPU reference of the optimizer step, in f64 (apex LARC + torch SGD, read line by line; Adam;
//! loss scaling's overflow check).
use super::{AdamHyper, SgdHyper};

/// Updates `p` and `buf` in place from `g` with learning rate `lr`.
pub fn sgd_step(p: &mut [f64], g: &[f64], buf: &mut [f64], lr: f64, h: &SgdHyper) {
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let (pn, gn) = (norm(p), norm(g));
    let wd = h.weight_decay as f64;
    let scale =
        if h.lars && pn != 0.0 && gn != 0.0 { Some(h.trust as f64 * pn / (gn + pn * wd + h.eps as f64)) } else { None };
    for i in 0..p.len() {
        let d = match (h.lars, scale) {
            (true, Some(a)) => (g[i] + wd * p[i]) * a,
            (true, None) => g[i],
            (false, _) => g[i] + wd * p[i],
        };
        buf[i] = h.momentum as f64 * buf[i] + d;
        p[i] -= lr * buf[i];
    }
}

/// Adam (torch.optim.Adam): updates `p`, `m1`, `m2` in place; `(c1, c2)` are the bias
/// corrections 1 - beta^t of this step (`optim::adam_corrections`).
pub fn adam_step(p: &mut [f64], g: &[f64], m1: &mut [f64], m2: &mut [f64], lr: f64, c: (f64, f64), h: &AdamHyper) {
    let (b1, b2, wd) = (h.beta1 as f64, h.beta2 as f64, h.weight_decay as f64);
    let (c1, c2) = c;
    for i in 0..p.len() {
        let d = g[i] + wd * p[i];
        m1[i] = b1 * m1[i] + (1.0 - b1) * d;
        m2[i] = b2 * m2[i] + (1.0 - b2) * d * d;
        p[i] -= lr * (m1[i] / c1) / ((m2[i] / c2).sqrt() + h.eps as f64);
    }
}

/// Loss scaling's check: `found` (0, or +inf once something overflowed) becomes +inf when an
/// element of `x` is NaN or infinite as the f32 the GPU holds (a value beyond f32's range has
/// overflowed there), and stays as it is otherwise.
pub fn check_finite(x: &[f64], found: f64) -> f64 {
    if x.iter().all(|v| (*v as f32).is_finite()) {
        found
    } else {
        f64::INFINITY
    }
}
