//! CPU references for the elementwise ops, in f64.

pub fn relu_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

pub fn relu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter().zip(dy).map(|(&v, &g)| if v > 0.0 { g } else { 0.0 }).collect()
}

pub fn add(a: &[f64], b: &[f64], alpha: f64, beta: f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&x, &y)| alpha * x + beta * y).collect()
}

/// Gradients of C = alpha*A + beta*B: (alpha*dC, beta*dC).
pub fn add_backward(dc: &[f64], alpha: f64, beta: f64) -> (Vec<f64>, Vec<f64>) {
    (dc.iter().map(|g| alpha * g).collect(), dc.iter().map(|g| beta * g).collect())
}

pub fn scale(x: &[f64], alpha: f64) -> Vec<f64> {
    x.iter().map(|v| alpha * v).collect()
}

/// Y[dst..dst+len] = X[src..src+len]; the rest of Y is left as given.
pub fn copy(x: &[f64], y: &mut [f64], src_offset: usize, dst_offset: usize, len: usize) {
    y[dst_offset..dst_offset + len].copy_from_slice(&x[src_offset..src_offset + len]);
}

/// X stored as f16 and read back: rounded to the nearest f16 (ties to even), beyond the f16
/// range infinity. The f32 -> f16 cast's reference; f16 -> f32 is exact.
pub fn round_to_f16(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| half::f16::from_f64(v).to_f64()).collect()
}
