//! CPU reference of the optimizer step, in f64 (apex LARC + torch SGD, read line by line).
use super::SgdHyper;

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
