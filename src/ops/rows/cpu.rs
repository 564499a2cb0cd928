//! CPU references for the row-wise ops over [rows, cols], in f64.
use super::L2_EPS;

fn rows_of(x: &[f64], cols: usize) -> impl Iterator<Item = &[f64]> {
    x.chunks(cols)
}

pub fn l2_normalize_forward(x: &[f64], cols: usize) -> Vec<f64> {
    rows_of(x, cols)
        .flat_map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(L2_EPS as f64);
            r.iter().map(move |v| v / n)
        })
        .collect()
}

pub fn l2_normalize_backward(x: &[f64], dy: &[f64], cols: usize) -> Vec<f64> {
    let mut dx = Vec::with_capacity(x.len());
    for (r, g) in x.chunks(cols).zip(dy.chunks(cols)) {
        let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n <= L2_EPS as f64 {
            dx.extend(g.iter().map(|v| v / L2_EPS as f64));
            continue;
        }
        let dot: f64 = r.iter().zip(g).map(|(a, b)| a * b).sum();
        dx.extend(r.iter().zip(g).map(|(v, gv)| gv / n - v * dot / (n * n * n)));
    }
    dx
}

fn logsumexp(r: &[f64], scale: f64) -> f64 {
    let m = r.iter().map(|v| scale * v).fold(f64::NEG_INFINITY, f64::max);
    m + r.iter().map(|v| (scale * v - m).exp()).sum::<f64>().ln()
}

pub fn softmax_forward(x: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    rows_of(x, cols)
        .flat_map(|r| {
            let lse = logsumexp(r, scale);
            r.iter().map(move |v| (scale * v - lse).exp())
        })
        .collect()
}

pub fn softmax_backward(y: &[f64], dy: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    let mut dx = Vec::with_capacity(y.len());
    for (r, g) in y.chunks(cols).zip(dy.chunks(cols)) {
        let dot: f64 = r.iter().zip(g).map(|(a, b)| a * b).sum();
        dx.extend(r.iter().zip(g).map(|(yv, gv)| scale * yv * (gv - dot)));
    }
    dx
}

pub fn log_softmax_forward(x: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    rows_of(x, cols)
        .flat_map(|r| {
            let lse = logsumexp(r, scale);
            r.iter().map(move |v| scale * v - lse)
        })
        .collect()
}

pub fn log_softmax_backward(y: &[f64], dy: &[f64], cols: usize, scale: f64) -> Vec<f64> {
    let mut dx = Vec::with_capacity(y.len());
    for (r, g) in y.chunks(cols).zip(dy.chunks(cols)) {
        let total: f64 = g.iter().sum();
        dx.extend(r.iter().zip(g).map(|(yv, gv)| scale * (gv - yv.exp() * total)));
    }
    dx
}
