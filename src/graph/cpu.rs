//! The CPU interpreter: runs a graph's ops with the f64 references of `ops::*::cpu`, so any
//! model's forward and backward can be compared with the GPU plan end to end, and
//! finite-differenced in f64.
use std::collections::HashMap;

use super::{Graph, Kind, Op, RowKind, TensorId};
use crate::error::{Error, Result};
use crate::ops;

/// Tensor values by id.
pub type Values = HashMap<TensorId, Vec<f64>>;

fn get<'v>(g: &Graph, v: &'v Values, t: TensorId) -> Result<&'v [f64]> {
    v.get(&t)
        .map(|x| x.as_slice())
        .ok_or_else(|| Error::Invalid(format!("CPU interpreter: no value for tensor '{}' ({:?})", g.info(t).name, t)))
}

/// Runs every op (forward and backward). `values` must hold every input, parameter and
/// buffer; constants are added here; batch-norm updates its running statistics in place.
pub fn run(g: &Graph, values: &mut Values) -> Result<()> {
    run_ops(g, values, 0..g.ops.len())
}

/// Runs the forward ops only.
pub fn run_forward(g: &Graph, values: &mut Values) -> Result<()> {
    run_ops(g, values, 0..g.forward_len)
}

fn run_ops(g: &Graph, values: &mut Values, range: std::ops::Range<usize>) -> Result<()> {
    for (t, data) in &g.constants {
        values.insert(*t, data.iter().map(|&x| x as f64).collect());
    }
    for (i, info) in g.tensors.iter().enumerate() {
        if matches!(info.kind, Kind::Input | Kind::Parameter | Kind::Buffer) && !values.contains_key(&TensorId(i)) {
            return Err(Error::Invalid(format!("CPU interpreter: {:?} '{}' has no value", info.kind, info.name)));
        }
    }
    for op in &g.ops[range] {
        eval(g, op, values)?;
    }
    Ok(())
}

fn eval(g: &Graph, op: &Op, v: &mut Values) -> Result<()> {
    use ops::*;
    match op {
        Op::Conv2d { x, w, y, s } => {
            let out = conv::cpu::forward(get(g, v, *x)?, get(g, v, *w)?, *s);
            v.insert(*y, out);
        }
        Op::Conv2dBackwardInput { dy, w, dx, s } => {
            // dX does not depend on X: pass zeros for it.
            let zeros = vec![0.0; s.input_len()];
            let (d, _) = conv::cpu::backward(&zeros, get(g, v, *w)?, get(g, v, *dy)?, *s);
            v.insert(*dx, d);
        }
        Op::Conv2dBackwardWeight { x, dy, dw, s } => {
            let zeros = vec![0.0; s.weight_len()];
            let (_, d) = conv::cpu::backward(get(g, v, *x)?, &zeros, get(g, v, *dy)?, *s);
            v.insert(*dw, d);
        }
        Op::BatchNorm { x, gamma, beta, running_mean, running_var, stats, y, s } => {
            let xv = get(g, v, *x)?;
            let (gm, bt) = (get(g, v, *gamma)?, get(g, v, *beta)?);
            match stats {
                Some((m, var)) => {
                    let (out, mean, bvar) = batchnorm::cpu::forward_train(xv, gm, bt, s);
                    let (rm, rv) = batchnorm::cpu::update_running(
                        get(g, v, *running_mean)?,
                        get(g, v, *running_var)?,
                        &mean,
                        &bvar,
                        s,
                    );
                    v.insert(*y, out);
                    v.insert(*m, mean);
                    v.insert(*var, bvar);
                    v.insert(*running_mean, rm);
                    v.insert(*running_var, rv);
                }
                None => {
                    let out = batchnorm::cpu::apply(xv, get(g, v, *running_mean)?, get(g, v, *running_var)?, gm, bt, s);
                    v.insert(*y, out);
                }
            }
        }
        Op::BatchNormBackward {
            t: batchnorm::BatchNormBackwardTensors { x, dy, relu_mask, mean, var, gamma, dgamma, dbeta, dx },
            s,
            training,
        } => {
            let masked = match relu_mask {
                Some(m) => Some(elementwise::cpu::relu_backward(get(g, v, *m)?, get(g, v, *dy)?)),
                None => None,
            };
            let (d, dg, db) = batchnorm::cpu::backward(
                get(g, v, *x)?,
                match &masked {
                    Some(m) => m,
                    None => get(g, v, *dy)?,
                },
                get(g, v, *mean)?,
                get(g, v, *var)?,
                get(g, v, *gamma)?,
                s,
                *training,
            );
            v.insert(*dx, d);
            v.insert(*dgamma, dg);
            v.insert(*dbeta, db);
        }
        Op::Relu { x, y } => {
            let out = elementwise::cpu::relu_forward(get(g, v, *x)?);
            v.insert(*y, out);
        }
        Op::ReluBackward { x, dy, dx } => {
            let out = elementwise::cpu::relu_backward(get(g, v, *x)?, get(g, v, *dy)?);
            v.insert(*dx, out);
        }
        Op::Add { a, b, c, alpha, beta, relu } => {
            let mut out = elementwise::cpu::add(get(g, v, *a)?, get(g, v, *b)?, *alpha as f64, *beta as f64);
            if *relu {
                out = elementwise::cpu::relu_forward(&out);
            }
            v.insert(*c, out);
        }
        Op::Scale { x, y, alpha } => {
            let out = elementwise::cpu::scale(get(g, v, *x)?, *alpha as f64);
            v.insert(*y, out);
        }
        Op::Fill { y, value } => {
            v.insert(*y, vec![*value as f64; g.info(*y).len()]);
        }
        Op::MaxPool { x, y, argmax, s } => {
            let (out, arg) = pool::cpu::max_pool_forward(get(g, v, *x)?, *s);
            v.insert(*y, out);
            v.insert(*argmax, arg.into_iter().map(|a| a as f64).collect());
        }
        Op::MaxPoolBackward { dy, argmax, dx, s } => {
            let arg: Vec<usize> = get(g, v, *argmax)?.iter().map(|&a| a as usize).collect();
            let out = pool::cpu::max_pool_backward(get(g, v, *dy)?, &arg, *s);
            v.insert(*dx, out);
        }
        Op::Reduce { x, y, dims, op } => {
            let out = reduce::cpu::reduce_axis(get(g, v, *x)?, dims[0], dims[1], dims[2], *op);
            v.insert(*y, out);
        }
        Op::ReduceBackward { x, dy, dx, dims, op, .. } => {
            let out =
                reduce::cpu::reduce_axis_backward(get(g, v, *x)?, get(g, v, *dy)?, dims[0], dims[1], dims[2], *op);
            v.insert(*dx, out);
        }
        Op::Matmul { a, b, bias, c, s } => {
            let bias_v = match bias {
                Some(t) => Some(get(g, v, *t)?.to_vec()),
                None => None,
            };
            let out = matmul::cpu::matmul(get(g, v, *a)?, get(g, v, *b)?, bias_v.as_deref(), *s);
            v.insert(*c, out);
        }
        Op::Rows { kind, x, y, cols, scale, .. } => {
            let xv = get(g, v, *x)?;
            let out = match kind {
                RowKind::L2Normalize => rows::cpu::l2_normalize_forward(xv, *cols),
                RowKind::Softmax => rows::cpu::softmax_forward(xv, *cols, *scale as f64),
                RowKind::LogSoftmax => rows::cpu::log_softmax_forward(xv, *cols, *scale as f64),
            };
            v.insert(*y, out);
        }
        Op::RowsBackward { kind, src, dy, dx, cols, scale, .. } => {
            let (sv, dyv) = (get(g, v, *src)?, get(g, v, *dy)?);
            let out = match kind {
                RowKind::L2Normalize => rows::cpu::l2_normalize_backward(sv, dyv, *cols),
                RowKind::Softmax => rows::cpu::softmax_backward(sv, dyv, *cols, *scale as f64),
                RowKind::LogSoftmax => rows::cpu::log_softmax_backward(sv, dyv, *cols, *scale as f64),
            };
            v.insert(*dx, out);
        }
        Op::CrossEntropy { x, q, loss, cols, scale, .. } => {
            let out = loss::cpu::cross_entropy_forward(get(g, v, *x)?, get(g, v, *q)?, *cols, *scale as f64);
            v.insert(*loss, out);
        }
        Op::CrossEntropyBackward { x, q, dloss, dx, cols, scale, .. } => {
            let out = loss::cpu::cross_entropy_backward(
                get(g, v, *x)?,
                get(g, v, *q)?,
                get(g, v, *dloss)?,
                *cols,
                *scale as f64,
            );
            v.insert(*dx, out);
        }
        Op::Concat { xs, y } => {
            let mut out = Vec::with_capacity(g.info(*y).len());
            for x in xs {
                out.extend_from_slice(get(g, v, *x)?);
            }
            v.insert(*y, out);
        }
        Op::Slice { x, y, offset } => {
            let len = g.info(*y).len();
            let out = get(g, v, *x)?[*offset..*offset + len].to_vec();
            v.insert(*y, out);
        }
        Op::SliceBackward { dy, dx, offset } => {
            let mut out = vec![0.0; g.info(*dx).len()];
            let d = get(g, v, *dy)?;
            elementwise::cpu::copy(d, &mut out, 0, *offset, d.len());
            v.insert(*dx, out);
        }
        Op::RenormRows { x, scratch, cols, .. } => {
            let out = rows::cpu::l2_normalize_forward(get(g, v, *x)?, *cols);
            v.insert(*scratch, out.clone());
            v.insert(*x, out);
        }
        Op::Sinkhorn { x, active, codes, s } => {
            let act = get(g, v, *active)?[0].max(0.0) as usize;
            let out = crate::ops::sinkhorn::cpu::sinkhorn(
                get(g, v, *x)?,
                s.queue_rows,
                act,
                s.batch,
                s.k,
                s.epsilon as f64,
                s.iterations,
            );
            v.insert(*codes, out);
        }
        Op::SwavTargets { codes, t, batch, n_crops, assign } => {
            let k = g.shape(*t)[1];
            let out = crate::ops::sinkhorn::cpu::targets(get(g, v, *codes)?, *batch, *n_crops, k, assign);
            v.insert(*t, out);
        }
        Op::QueuePush { queue, src, src_row, batch, .. } => {
            let d = g.shape(*queue)[1];
            let old = get(g, v, *queue)?.to_vec();
            let rows = get(g, v, *src)?[src_row * d..(src_row + batch) * d].to_vec();
            let mut new = rows;
            new.extend_from_slice(&old[..old.len() - batch * d]);
            v.insert(*queue, new);
        }
        Op::SgdStep { t: crate::ops::optim::SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }, h } => {
            let st = get(g, v, *state)?.to_vec();
            let gr = get(g, v, *grad)?.to_vec();
            let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
            let pn = norm(get(g, v, *param)?);
            v.insert(*pnorm, vec![pn]);
            v.insert(*gnorm, vec![norm(&gr)]);
            if !(h.gated && st[1] == 0.0) && get(g, v, *loss)?[0].is_finite() {
                let mut p = get(g, v, *param)?.to_vec();
                let mut m = get(g, v, *momentum)?.to_vec();
                crate::ops::optim::cpu::sgd_step(&mut p, &gr, &mut m, st[0], h);
                v.insert(*param, p);
                v.insert(*momentum, m);
            }
        }
        Op::AdamStep { t: crate::ops::optim::AdamTensors { param, grad, m1, m2, state, loss }, h } => {
            let st = get(g, v, *state)?.to_vec();
            if !(h.gated && st[1] == 0.0) && get(g, v, *loss)?[0].is_finite() {
                let gr = get(g, v, *grad)?.to_vec();
                let mut p = get(g, v, *param)?.to_vec();
                let mut a = get(g, v, *m1)?.to_vec();
                let mut b = get(g, v, *m2)?.to_vec();
                let c = if h.gated { (st[4], st[5]) } else { (st[2], st[3]) };
                crate::ops::optim::cpu::adam_step(&mut p, &gr, &mut a, &mut b, st[0], c, h);
                v.insert(*param, p);
                v.insert(*m1, a);
                v.insert(*m2, b);
            }
        }
    }
    Ok(())
}
