//! CPU references of Sinkhorn-Knopp and the targets, in f64, written as the official code reads.

/// Official Sinkhorn-Knopp on the active rows of X [queue_rows + batch, K] (the last
/// `active + batch` rows): Q = exp(X/eps)^T with no shift (f64 has the range), Q /= sum(Q),
/// `iters` x (rows of Q /= their sums, /= K; columns /= their sums, /= B_s), Q *= B_s;
/// returns the batch's codes [batch, K].
pub fn sinkhorn(
    x: &[f64],
    queue_rows: usize,
    active: usize,
    batch: usize,
    k: usize,
    eps: f64,
    iters: usize,
) -> Vec<f64> {
    let first = queue_rows - active.min(queue_rows);
    let bs = queue_rows + batch - first;
    // q[kk][b] = Q[k, b], the official (K x B_s) orientation.
    let mut q = vec![vec![0.0; bs]; k];
    for b in 0..bs {
        for (kk, row) in q.iter_mut().enumerate() {
            row[b] = (x[(first + b) * k + kk] / eps).exp();
        }
    }
    let total: f64 = q.iter().flatten().sum();
    q.iter_mut().flatten().for_each(|v| *v /= total);
    for _ in 0..iters {
        for row in q.iter_mut() {
            let s: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s * k as f64);
        }
        for b in 0..bs {
            let s: f64 = q.iter().map(|row| row[b]).sum();
            q.iter_mut().for_each(|row| row[b] /= s * bs as f64);
        }
    }
    let mut codes = vec![0.0; batch * k];
    for b in 0..batch {
        for kk in 0..k {
            codes[b * k + kk] = q[kk][bs - batch + b] * bs as f64;
        }
    }
    codes
}

/// T[r, k] = sum over assignment crops c_i != crop(r) of codes_i[r % batch, k].
pub fn targets(codes: &[f64], batch: usize, n_crops: usize, k: usize, assign: &[usize]) -> Vec<f64> {
    let mut t = vec![0.0; n_crops * batch * k];
    for r in 0..n_crops * batch {
        let (crop, b) = (r / batch, r % batch);
        for (i, &c) in assign.iter().enumerate() {
            if c != crop {
                for kk in 0..k {
                    t[r * k + kk] += codes[(i * batch + b) * k + kk];
                }
            }
        }
    }
    t
}
