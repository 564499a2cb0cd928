//! CPU reference for cross-entropy against soft targets, in f64.

pub fn cross_entropy_forward(x: &[f64], q: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    x.chunks(cols)
        .zip(q.chunks(cols))
        .map(|(r, t)| {
            let m = r.iter().map(|v| scale * v).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + r.iter().map(|v| (scale * v - m).exp()).sum::<f64>().ln();
            -r.iter().zip(t).map(|(v, qv)| qv * (scale * v - lse)).sum::<f64>()
        })
        .collect()
}

/// dX = scale * dL_i * (softmax(scale X_i) * sum(Q_i) - Q_i)
pub fn cross_entropy_backward(x: &[f64], q: &[f64], dloss: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    let p = crate::ops::rows::cpu::softmax_forward(x, cols, scale);
    let mut dx = Vec::with_capacity(x.len());
    for ((pr, t), g) in p.chunks(cols).zip(q.chunks(cols)).zip(dloss) {
        let qs: f64 = t.iter().sum();
        dx.extend(pr.iter().zip(t).map(|(pv, qv)| scale * g * (pv * qs - qv)));
    }
    dx
}
