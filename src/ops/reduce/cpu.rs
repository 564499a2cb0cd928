//! CPU reference for reductions over the middle axis of [outer, reduce, inner], in f64.
use super::ReduceOp;

pub fn reduce_axis(x: &[f64], outer: usize, reduce: usize, inner: usize, op: ReduceOp) -> Vec<f64> {
    let mut y = vec![0.0; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let vals = (0..reduce).map(|r| x[(o * reduce + r) * inner + i]);
            y[o * inner + i] = match op {
                ReduceOp::Sum => vals.sum(),
                ReduceOp::Mean => vals.sum::<f64>() / reduce as f64,
                ReduceOp::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                ReduceOp::Norm => vals.map(|v| v * v).sum::<f64>().sqrt(),
            };
        }
    }
    y
}

/// Gradient of sum / mean / norm w.r.t. X; max sends it to every element equal to the max.
pub fn reduce_axis_backward(
    x: &[f64],
    dy: &[f64],
    outer: usize,
    reduce: usize,
    inner: usize,
    op: ReduceOp,
) -> Vec<f64> {
    let y = reduce_axis(x, outer, reduce, inner, op);
    let mut dx = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let (g, yv) = (dy[o * inner + i], y[o * inner + i]);
            for r in 0..reduce {
                let at = (o * reduce + r) * inner + i;
                dx[at] = match op {
                    ReduceOp::Sum => g,
                    ReduceOp::Mean => g / reduce as f64,
                    ReduceOp::Norm => g * x[at] / yv,
                    ReduceOp::Max => {
                        if x[at] == yv {
                            g
                        } else {
                            0.0
                        }
                    }
                };
            }
        }
    }
    dx
}
