//! CPU reference for batch-norm over [batch, channels, spatial], in f64.
use super::BatchNormShape;

fn at(s: &BatchNormShape, b: usize, c: usize, i: usize) -> usize {
    (b * s.channels + c) * s.spatial + i
}

/// Per-channel batch mean and biased variance (cached for the backward pass).
pub fn batch_stats(x: &[f64], s: &BatchNormShape) -> (Vec<f64>, Vec<f64>) {
    let count = (s.batch * s.spatial) as f64;
    let mut mean = vec![0.0; s.channels];
    let mut var = vec![0.0; s.channels];
    for c in 0..s.channels {
        for b in 0..s.batch {
            for i in 0..s.spatial {
                mean[c] += x[at(s, b, c, i)];
            }
        }
        mean[c] /= count;
        for b in 0..s.batch {
            for i in 0..s.spatial {
                let d = x[at(s, b, c, i)] - mean[c];
                var[c] += d * d;
            }
        }
        var[c] /= count;
    }
    (mean, var)
}

/// Y = (X - mean) / sqrt(var + eps) * gamma + beta with the given per-channel stats (and
/// max(Y, 0) when `s.relu`).
pub fn apply(x: &[f64], mean: &[f64], var: &[f64], gamma: &[f64], beta: &[f64], s: &BatchNormShape) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for b in 0..s.batch {
        for c in 0..s.channels {
            let rstd = 1.0 / (var[c] + s.eps as f64).sqrt();
            for i in 0..s.spatial {
                let k = at(s, b, c, i);
                let v = (x[k] - mean[c]) * rstd * gamma[c] + beta[c];
                y[k] = if s.relu { v.max(0.0) } else { v };
            }
        }
    }
    y
}

/// Training forward: (Y, batch mean, biased batch var).
pub fn forward_train(x: &[f64], gamma: &[f64], beta: &[f64], s: &BatchNormShape) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mean, var) = batch_stats(x, s);
    (apply(x, &mean, &var, gamma, beta, s), mean, var)
}

/// Running stats after one training step: momentum towards mean and *unbiased* variance.
pub fn update_running(
    run_mean: &[f64],
    run_var: &[f64],
    mean: &[f64],
    var: &[f64],
    s: &BatchNormShape,
) -> (Vec<f64>, Vec<f64>) {
    let m = s.momentum as f64;
    let count = (s.batch * s.spatial) as f64;
    let rm = run_mean.iter().zip(mean).map(|(r, v)| (1.0 - m) * r + m * v).collect();
    let rv = run_var.iter().zip(var).map(|(r, v)| (1.0 - m) * r + m * v * count / (count - 1.0)).collect();
    (rm, rv)
}

/// Returns (dX, dgamma, dbeta). In training the stats depend on X; in eval they are constants.
pub fn backward(
    x: &[f64],
    dy: &[f64],
    mean: &[f64],
    var: &[f64],
    gamma: &[f64],
    s: &BatchNormShape,
    training: bool,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let count = (s.batch * s.spatial) as f64;
    let mut dgamma = vec![0.0; s.channels];
    let mut dbeta = vec![0.0; s.channels];
    let mut dx = vec![0.0; x.len()];
    for c in 0..s.channels {
        let rstd = 1.0 / (var[c] + s.eps as f64).sqrt();
        for b in 0..s.batch {
            for i in 0..s.spatial {
                let k = at(s, b, c, i);
                dbeta[c] += dy[k];
                dgamma[c] += dy[k] * (x[k] - mean[c]) * rstd;
            }
        }
        for b in 0..s.batch {
            for i in 0..s.spatial {
                let k = at(s, b, c, i);
                let xhat = (x[k] - mean[c]) * rstd;
                dx[k] = if training {
                    gamma[c] * rstd * (dy[k] - dbeta[c] / count - xhat * dgamma[c] / count)
                } else {
                    gamma[c] * rstd * dy[k]
                };
            }
        }
    }
    (dx, dgamma, dbeta)
}
