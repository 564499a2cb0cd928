//! CPU reference for matmul, in f64: plain loops written for clarity.
use super::MatmulShape;

fn a_at(a: &[f64], s: MatmulShape, m: usize, k: usize) -> f64 {
    if s.trans_a {
        a[k * s.m + m]
    } else {
        a[m * s.k + k]
    }
}

fn b_at(b: &[f64], s: MatmulShape, k: usize, n: usize) -> f64 {
    if s.trans_b {
        b[n * s.k + k]
    } else {
        b[k * s.n + n]
    }
}

/// C[m,n] = sum_k op(A)[m,k] op(B)[k,n] + bias[n]
pub fn matmul(a: &[f64], b: &[f64], bias: Option<&[f64]>, s: MatmulShape) -> Vec<f64> {
    let mut c = vec![0.0; s.m * s.n];
    for m in 0..s.m {
        for n in 0..s.n {
            let mut acc = bias.map_or(0.0, |b| b[n]);
            for k in 0..s.k {
                acc += a_at(a, s, m, k) * b_at(b, s, k, n);
            }
            c[m * s.n + n] = acc;
        }
    }
    c
}

/// Returns (dA, dB, dbias), dA and dB in the layouts A and B are stored in:
/// dop(A)[m,k] = sum_n dC[m,n] op(B)[k,n]; dop(B)[k,n] = sum_m op(A)[m,k] dC[m,n].
pub fn matmul_backward(a: &[f64], b: &[f64], dc: &[f64], s: MatmulShape) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut da = vec![0.0; s.m * s.k];
    let mut db = vec![0.0; s.k * s.n];
    let mut dbias = vec![0.0; s.n];
    for m in 0..s.m {
        for n in 0..s.n {
            let g = dc[m * s.n + n];
            dbias[n] += g;
            for k in 0..s.k {
                let ai = if s.trans_a { k * s.m + m } else { m * s.k + k };
                let bi = if s.trans_b { n * s.k + k } else { k * s.n + n };
                da[ai] += g * b[bi];
                db[bi] += g * a[ai];
            }
        }
    }
    (da, db, dbias)
}
