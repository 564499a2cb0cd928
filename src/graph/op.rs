//! Every op the executor knows, and everything about each in one file, in the same order:
//! the variant (its fields name tensors by id), what it reads and writes (`Op::io`), its GPU
//! lowering (`lower`, used by `plan`), its CPU evaluation with the f64 references (`eval`,
//! used by `cpu`) and its gradient rule (`Graph::backward_rule`, used by `autodiff`). Adding an
//! op is a variant and one arm in each of those four matches (see CONTRIBUTING.md).
use std::collections::HashMap;

use super::{Graph, RowKind, TensorId};
use crate::dist::Reduce;
use crate::error::{Error, Result};
use crate::gpu::{runs, Dispatch, Exchange, Gpu, Step, Tensor};
use crate::ops;
use crate::ops::batchnorm::{BatchNormBackwardTensors, BatchNormShape};
use crate::ops::conv::{Conv2dShape, ConvKernel, ConvPass};
use crate::ops::matmul::{backward_products, MatmulShape, Operand};
use crate::ops::optim::{AdamHyper, AdamTensors, SgdHyper, SgdTensors};
use crate::ops::pool::PoolShape;
use crate::ops::reduce::ReduceOp;
use crate::ops::sinkhorn::SinkhornShape;
use crate::ops::{batchnorm, conv, elementwise, loss, matmul, optim, pool, reduce, rows, sinkhorn};

/// Every op the executor knows, forward and backward. Fields name tensors by id.
#[derive(Clone, Debug)]
pub enum Op {
    Conv2d {
        x: TensorId,
        w: TensorId,
        y: TensorId,
        s: Conv2dShape,
    },
    Conv2dBackwardInput {
        dy: TensorId,
        w: TensorId,
        dx: TensorId,
        s: Conv2dShape,
    },
    Conv2dBackwardWeight {
        x: TensorId,
        dy: TensorId,
        dw: TensorId,
        s: Conv2dShape,
    },
    /// Training mode writes the batch statistics to `mean`/`var` (kept for backward) and
    /// updates the running ones; eval mode (`stats` None) normalises with the running ones.
    BatchNorm {
        x: TensorId,
        gamma: TensorId,
        beta: TensorId,
        running_mean: TensorId,
        running_var: TensorId,
        stats: Option<(TensorId, TensorId)>,
        y: TensorId,
        s: BatchNormShape,
    },
    /// With `relu_mask` (set by the plan's ReLU fusion) `dy` is the gradient of the fused
    /// ReLU's output `relu_mask`, masked in the same passes.
    BatchNormBackward {
        t: BatchNormBackwardTensors<TensorId>,
        s: BatchNormShape,
        training: bool,
    },
    Relu {
        x: TensorId,
        y: TensorId,
    },
    ReluBackward {
        x: TensorId,
        dy: TensorId,
        dx: TensorId,
    },
    /// c = alpha * a + beta * b
    Add {
        a: TensorId,
        b: TensorId,
        c: TensorId,
        alpha: f32,
        beta: f32,
        /// max(C, 0) in the same pass (set by the plan's fusion, never by models).
        relu: bool,
    },
    Scale {
        x: TensorId,
        y: TensorId,
        alpha: f32,
    },
    Fill {
        y: TensorId,
        value: f32,
    },
    MaxPool {
        x: TensorId,
        y: TensorId,
        argmax: TensorId,
        s: PoolShape,
    },
    MaxPoolBackward {
        dy: TensorId,
        argmax: TensorId,
        dx: TensorId,
        s: PoolShape,
    },
    /// y[o, i] = op over r of x[o, r, i]
    Reduce {
        x: TensorId,
        y: TensorId,
        dims: [usize; 3],
        op: ReduceOp,
    },
    ReduceBackward {
        x: TensorId,
        y: TensorId,
        dy: TensorId,
        dx: TensorId,
        dims: [usize; 3],
        op: ReduceOp,
    },
    Matmul {
        a: TensorId,
        b: TensorId,
        bias: Option<TensorId>,
        c: TensorId,
        s: MatmulShape,
    },
    /// Row-wise op over [rows, cols] with `scale` (softmax(scale * x), ...).
    Rows {
        kind: RowKind,
        x: TensorId,
        y: TensorId,
        rows: usize,
        cols: usize,
        scale: f32,
    },
    /// `src` is the forward input for L2Normalize, the forward output for the softmaxes.
    RowsBackward {
        kind: RowKind,
        src: TensorId,
        dy: TensorId,
        dx: TensorId,
        rows: usize,
        cols: usize,
        scale: f32,
    },
    CrossEntropy {
        x: TensorId,
        q: TensorId,
        loss: TensorId,
        rows: usize,
        cols: usize,
        scale: f32,
    },
    CrossEntropyBackward {
        x: TensorId,
        q: TensorId,
        dloss: TensorId,
        dx: TensorId,
        rows: usize,
        cols: usize,
        scale: f32,
    },
    /// y = the xs one after another (concatenation along the first axis).
    Concat {
        xs: Vec<TensorId>,
        y: TensorId,
    },
    /// y = x[offset .. offset + len(y)] (a range of rows).
    Slice {
        x: TensorId,
        y: TensorId,
        offset: usize,
    },
    /// dx = 0 except dx[offset .. offset + len(dy)] = dy.
    SliceBackward {
        dy: TensorId,
        dx: TensorId,
        offset: usize,
    },
    /// In place, outside autograd: each row of the persistent `x` scaled to unit L2 norm
    /// (the per-step prototype renormalisation); `scratch` holds the normalised copy.
    RenormRows {
        x: TensorId,
        scratch: TensorId,
        rows: usize,
        cols: usize,
    },
    /// Sinkhorn-Knopp codes (no gradient) of `x` = [queue rows; batch rows] x K.
    Sinkhorn {
        x: TensorId,
        active: TensorId,
        codes: TensorId,
        s: SinkhornShape,
    },
    /// Swapped-prediction targets from the codes of the assignment crops.
    SwavTargets {
        codes: TensorId,
        t: TensorId,
        batch: usize,
        n_crops: usize,
        assign: Vec<usize>,
    },
    /// FIFO push of `batch` rows of `src` (from row `src_row`) to the front of the persistent
    /// `queue` [len, D], through `scratch` [len - batch, D].
    QueuePush {
        queue: TensorId,
        src: TensorId,
        src_row: usize,
        scratch: Option<TensorId>,
        batch: usize,
    },
    /// In place: SGD(+LARS) on a parameter and its momentum; `state` = ops::optim::STATE_LEN values.
    SgdStep {
        t: SgdTensors<TensorId>,
        h: SgdHyper,
    },
    /// In place: Adam on a parameter and its two moments.
    AdamStep {
        t: AdamTensors<TensorId>,
        h: AdamHyper,
    },
    /// In place, outside autograd: `xs` summed over the ranks of a data-parallel job and
    /// scaled by `scale`, in one exchange (the gradient average).
    AllReduce {
        xs: Vec<TensorId>,
        scale: f32,
    },
}

/// The tensors an op reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Io {
    pub reads: Vec<TensorId>,
    pub writes: Vec<TensorId>,
}

fn io(reads: &[TensorId], writes: &[TensorId]) -> Io {
    Io { reads: reads.to_vec(), writes: writes.to_vec() }
}

impl Op {
    /// What the op reads and writes, one arm per op (batch-norm's in-place running
    /// statistics are not listed: nothing in a step reads them after).
    pub fn io(&self) -> Io {
        use Op::*;
        match self {
            Conv2d { x, w, y, .. } => io(&[*x, *w], &[*y]),
            Conv2dBackwardInput { dy, w, dx, .. } => io(&[*dy, *w], &[*dx]),
            Conv2dBackwardWeight { x, dy, dw, .. } => io(&[*x, *dy], &[*dw]),
            BatchNorm { x, gamma, beta, running_mean, running_var, stats, y, .. } => {
                let reads = [*x, *gamma, *beta, *running_mean, *running_var];
                match stats {
                    Some((m, v)) => io(&reads, &[*y, *m, *v]),
                    None => io(&reads, &[*y]),
                }
            }
            // With a fused ReLU the masked gradient is stored over `dy`.
            BatchNormBackward {
                t: BatchNormBackwardTensors { x, dy, relu_mask, mean, var, gamma, dgamma, dbeta, dx },
                ..
            } => match relu_mask {
                Some(m) => io(&[*x, *dy, *mean, *var, *gamma, *m], &[*dgamma, *dbeta, *dx, *dy]),
                None => io(&[*x, *dy, *mean, *var, *gamma], &[*dgamma, *dbeta, *dx]),
            },
            Relu { x, y } => io(&[*x], &[*y]),
            ReluBackward { x, dy, dx } => io(&[*x, *dy], &[*dx]),
            Add { a, b, c, .. } => io(&[*a, *b], &[*c]),
            Scale { x, y, .. } => io(&[*x], &[*y]),
            Fill { y, .. } => io(&[], &[*y]),
            MaxPool { x, y, argmax, .. } => io(&[*x], &[*y, *argmax]),
            MaxPoolBackward { dy, argmax, dx, .. } => io(&[*dy, *argmax], &[*dx]),
            Reduce { x, y, .. } => io(&[*x], &[*y]),
            ReduceBackward { x, y, dy, dx, .. } => io(&[*x, *y, *dy], &[*dx]),
            Matmul { a, b, bias, c, .. } => {
                let reads: Vec<TensorId> = [Some(*a), Some(*b), *bias].into_iter().flatten().collect();
                io(&reads, &[*c])
            }
            Rows { x, y, .. } => io(&[*x], &[*y]),
            RowsBackward { src, dy, dx, .. } => io(&[*src, *dy], &[*dx]),
            CrossEntropy { x, q, loss, .. } => io(&[*x, *q], &[*loss]),
            CrossEntropyBackward { x, q, dloss, dx, .. } => io(&[*x, *q, *dloss], &[*dx]),
            Concat { xs, y, .. } => io(xs, &[*y]),
            Slice { x, y, .. } => io(&[*x], &[*y]),
            SliceBackward { dy, dx, .. } => io(&[*dy], &[*dx]),
            RenormRows { x, scratch, .. } => io(&[*x], &[*scratch]),
            Sinkhorn { x, active, codes, .. } => io(&[*x, *active], &[*codes]),
            SwavTargets { codes, t, .. } => io(&[*codes], &[*t]),
            QueuePush { queue, src, scratch, .. } => {
                let writes: Vec<TensorId> = scratch.iter().copied().collect();
                io(&[*queue, *src], &writes)
            }
            // The parameter and optimizer state are updated in place (persistent tensors).
            SgdStep { t: SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }, .. } => {
                io(&[*param, *grad, *momentum, *state, *loss], &[*pnorm, *gnorm])
            }
            AdamStep { t: AdamTensors { param, grad, m1, m2, state, loss }, .. } => {
                io(&[*param, *grad, *m1, *m2, *state, *loss], &[])
            }
            AllReduce { xs, .. } => io(xs, xs),
        }
    }

    /// Tensors the op reads (`io().reads`).
    pub fn inputs(&self) -> Vec<TensorId> {
        self.io().reads
    }

    /// Tensors the op writes (`io().writes`).
    pub fn outputs(&self) -> Vec<TensorId> {
        self.io().writes
    }
}

// ---- GPU lowering

/// The dispatches of a GEMM-backed op on the chooser's `default`, or on the tuner's fastest
/// candidate (gpu::tune).
fn tuned(
    gpu: &Gpu,
    op_shape: &str,
    default: matmul::GemmVariant,
    build: impl FnMut(matmul::GemmVariant) -> Result<Vec<Dispatch>>,
) -> Result<Vec<Dispatch>> {
    let candidates = matmul::tuning_candidates(gpu.tuner.mode, gpu.class, gpu.subgroup_size, default);
    gpu.tuner.choose(gpu, op_shape, &candidates, build)
}

/// One op -> its steps on the planned tensors: dispatches, and in a graph for several ranks
/// the exchanges between them (gradients, Sinkhorn sums, synchronised batch-norm).
pub(super) fn lower(gpu: &Gpu, g: &Graph, tensors: &[Option<Tensor>], op: &Op) -> Result<Vec<Step>> {
    let t = |id: TensorId| -> Result<&Tensor> {
        tensors[id.0].as_ref().ok_or_else(|| Error::Invalid(format!("tensor '{}' has no buffer", g.info(id).name)))
    };
    Ok(match op {
        Op::AllReduce { xs, scale } => {
            let xs = xs.iter().map(|x| t(*x)).collect::<Result<Vec<_>>>()?;
            vec![Step::Exchange(Exchange::in_place("all-reduce", &xs, Reduce::Sum, *scale)?)]
        }
        Op::Sinkhorn { x, active, codes, s } => sinkhorn::sinkhorn_steps(gpu, t(*x)?, t(*active)?, t(*codes)?, *s)?,
        Op::BatchNorm { x, gamma, beta, running_mean, running_var, stats, y, s } => {
            let tensors = batchnorm::BatchNormTensors {
                x: *x,
                gamma: *gamma,
                beta: *beta,
                running_mean: *running_mean,
                running_var: *running_var,
                y: *y,
            }
            .map(t)?;
            match stats {
                Some((m, var)) => batchnorm::forward_train_steps(gpu, &tensors, (t(*m)?, t(*var)?), *s, true)?,
                None => vec![Step::Run(batchnorm::forward_eval(gpu, &tensors, *s)?)],
            }
        }
        Op::BatchNormBackward { t: tensors, s, training } => {
            batchnorm::backward_steps(gpu, &tensors.map(t)?, *s, *training)?
        }
        other => runs(lower_dispatches(gpu, g, tensors, other)?),
    })
}

/// The ops that are dispatches only.
fn lower_dispatches(gpu: &Gpu, g: &Graph, tensors: &[Option<Tensor>], op: &Op) -> Result<Vec<Dispatch>> {
    let t = |id: TensorId| -> Result<&Tensor> {
        tensors[id.0].as_ref().ok_or_else(|| Error::Invalid(format!("tensor '{}' has no buffer", g.info(id).name)))
    };
    Ok(match op {
        // The GEMM-backed ops: the chooser's variant, or the tuner's fastest (gpu::tune).
        Op::Conv2d { x, w, y, s } => {
            let (x, w, y) = (t(*x)?, t(*w)?, t(*y)?);
            let pass = ConvPass::Forward;
            tuned(gpu, &format!("conv2d_forward {s:?}"), ConvKernel::default_variant(gpu, s, pass), |v| {
                conv::forward(gpu, x, w, y, *s, ConvKernel::with_variant(gpu, s, pass, v))
            })?
        }
        Op::Conv2dBackwardInput { dy, w, dx, s } => {
            let (dy, w, dx) = (t(*dy)?, t(*w)?, t(*dx)?);
            let pass = ConvPass::BackwardInput;
            let v = ConvKernel::default_variant(gpu, s, pass);
            tuned(gpu, &format!("conv2d_backward_input {s:?}"), v, |v| {
                conv::backward_input(gpu, dy, w, dx, *s, ConvKernel::with_variant(gpu, s, pass, v))
            })?
        }
        Op::Conv2dBackwardWeight { x, dy, dw, s } => {
            let (x, dy, dw) = (t(*x)?, t(*dy)?, t(*dw)?);
            let pass = ConvPass::BackwardWeight;
            let v = ConvKernel::default_variant(gpu, s, pass);
            tuned(gpu, &format!("conv2d_backward_weight {s:?}"), v, |v| {
                let kernel = ConvKernel::with_variant(gpu, s, pass, v);
                conv::backward_weight(gpu, x, dy, dw, *s, kernel, conv::weight_grad_splits(*s, kernel, gpu.class))
            })?
        }
        Op::Relu { x, y } => vec![elementwise::relu_forward(gpu, t(*x)?, t(*y)?)?],
        Op::ReluBackward { x, dy, dx } => {
            vec![elementwise::relu_backward(gpu, t(*x)?, t(*dy)?, t(*dx)?)?]
        }
        Op::Add { a, b, c, alpha, beta, relu: false } => {
            vec![elementwise::add(gpu, t(*a)?, t(*b)?, t(*c)?, *alpha, *beta)?]
        }
        Op::Add { a, b, c, alpha, beta, relu: true } => {
            vec![elementwise::add_relu(gpu, t(*a)?, t(*b)?, t(*c)?, *alpha, *beta)?]
        }
        Op::Scale { x, y, alpha } => vec![elementwise::scale(gpu, t(*x)?, t(*y)?, *alpha)?],
        Op::Fill { y, value } => vec![elementwise::fill(gpu, t(*y)?, *value)?],
        Op::MaxPool { x, y, argmax, s } => vec![pool::max_pool_forward(gpu, t(*x)?, t(*y)?, t(*argmax)?, *s)?],
        Op::MaxPoolBackward { dy, argmax, dx, s } => {
            vec![pool::max_pool_backward(gpu, t(*dy)?, t(*argmax)?, t(*dx)?, *s)?]
        }
        Op::Reduce { x, y, dims, op } => reduce::reduce_axis(gpu, t(*x)?, t(*y)?, dims[0], dims[1], dims[2], *op)?,
        Op::ReduceBackward { x, y, dy, dx, dims, op } => {
            vec![reduce::reduce_axis_backward(gpu, t(*x)?, t(*y)?, t(*dy)?, t(*dx)?, dims[0], dims[1], dims[2], *op)?]
        }
        Op::Matmul { a, b, bias, c, s } => {
            let bias_t = match bias {
                Some(b) => Some(t(*b)?),
                None => None,
            };
            let (a, b, c) = (t(*a)?, t(*b)?, t(*c)?);
            let v = matmul::GemmVariant::pick(gpu, s.m, s.n);
            tuned(gpu, &format!("matmul {s:?}"), v, |v| matmul::matmul(gpu, a, b, bias_t, c, *s, v))?
        }
        Op::Rows { kind, x, y, rows: r, cols, scale } => vec![match kind {
            RowKind::L2Normalize => rows::l2_normalize_forward(gpu, t(*x)?, t(*y)?, *r, *cols)?,
            RowKind::Softmax => rows::softmax_forward(gpu, t(*x)?, t(*y)?, *r, *cols, *scale)?,
            RowKind::LogSoftmax => rows::log_softmax_forward(gpu, t(*x)?, t(*y)?, *r, *cols, *scale)?,
        }],
        Op::RowsBackward { kind, src, dy, dx, rows: r, cols, scale } => vec![match kind {
            RowKind::L2Normalize => rows::l2_normalize_backward(gpu, t(*src)?, t(*dy)?, t(*dx)?, *r, *cols)?,
            RowKind::Softmax => rows::softmax_backward(gpu, t(*src)?, t(*dy)?, t(*dx)?, *r, *cols, *scale)?,
            RowKind::LogSoftmax => rows::log_softmax_backward(gpu, t(*src)?, t(*dy)?, t(*dx)?, *r, *cols, *scale)?,
        }],
        Op::CrossEntropy { x, q, loss: l, rows: r, cols, scale } => {
            vec![loss::cross_entropy_forward(gpu, t(*x)?, t(*q)?, t(*l)?, *r, *cols, *scale)?]
        }
        Op::CrossEntropyBackward { x, q, dloss, dx, rows: r, cols, scale } => {
            vec![loss::cross_entropy_backward(gpu, t(*x)?, t(*q)?, t(*dloss)?, t(*dx)?, *r, *cols, *scale)?]
        }
        Op::Concat { xs, y } => {
            let mut out = Vec::new();
            let mut offset = 0;
            for x in xs {
                let len = g.info(*x).len();
                out.push(elementwise::copy(gpu, t(*x)?, t(*y)?, 0, offset, len)?);
                offset += len;
            }
            out
        }
        Op::Slice { x, y, offset } => vec![elementwise::copy(gpu, t(*x)?, t(*y)?, *offset, 0, g.info(*y).len())?],
        Op::RenormRows { x, scratch, rows: r, cols } => {
            vec![
                rows::l2_normalize_forward(gpu, t(*x)?, t(*scratch)?, *r, *cols)?,
                elementwise::copy(gpu, t(*scratch)?, t(*x)?, 0, 0, r * cols)?,
            ]
        }
        Op::SwavTargets { codes, t: targets, batch, n_crops, assign } => {
            let k = g.shape(*targets)[1];
            vec![sinkhorn::targets(gpu, t(*codes)?, t(*targets)?, *batch, *n_crops, k, assign)?]
        }
        Op::QueuePush { queue, src, src_row, scratch, batch } => {
            let d = g.shape(*queue)[1];
            let len = g.info(*queue).len();
            let mut out = Vec::new();
            if let Some(scratch) = scratch {
                // Shift through the scratch: one dispatch may not read and write one buffer.
                out.push(elementwise::copy(gpu, t(*queue)?, t(*scratch)?, 0, 0, len - batch * d)?);
                out.push(elementwise::copy(gpu, t(*scratch)?, t(*queue)?, 0, batch * d, len - batch * d)?);
            }
            out.push(elementwise::copy(gpu, t(*src)?, t(*queue)?, src_row * d, 0, batch * d)?);
            out
        }
        Op::SgdStep { t: tensors, h } => optim::sgd_step(gpu, &tensors.map(t)?, *h)?,
        Op::AdamStep { t: tensors, h } => vec![optim::adam_step(gpu, &tensors.map(t)?, *h)?],
        Op::SliceBackward { dy, dx, offset } => {
            vec![
                elementwise::fill(gpu, t(*dx)?, 0.0)?,
                elementwise::copy(gpu, t(*dy)?, t(*dx)?, 0, *offset, g.info(*dy).len())?,
            ]
        }
        Op::AllReduce { .. } | Op::Sinkhorn { .. } | Op::BatchNorm { .. } | Op::BatchNormBackward { .. } => {
            unreachable!("lowered as steps in lower")
        }
    })
}

// ---- CPU evaluation

/// Tensor values by id (the CPU interpreter's, `graph::cpu`).
pub type Values = std::collections::HashMap<TensorId, Vec<f64>>;

fn get<'v>(g: &Graph, v: &'v Values, t: TensorId) -> Result<&'v [f64]> {
    v.get(&t)
        .map(|x| x.as_slice())
        .ok_or_else(|| Error::Invalid(format!("CPU interpreter: no value for tensor '{}' ({:?})", g.info(t).name, t)))
}

pub(super) fn eval(g: &Graph, op: &Op, v: &mut Values) -> Result<()> {
    use ops::*;
    if g.world > 1 {
        // The CPU evaluation is of one process; the ranks meet only in a plan.
        return Err(Error::Invalid(format!("a graph for a world of {} ranks cannot be evaluated on the CPU", g.world)));
    }
    match op {
        Op::AllReduce { .. } => return Err(Error::Invalid("all-reduce in a graph for one process".into())),
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
            let st = crate::ops::optim::StepState::from_values(get(g, v, *state)?);
            let gr = get(g, v, *grad)?.to_vec();
            let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
            let pn = norm(get(g, v, *param)?);
            v.insert(*pnorm, vec![pn]);
            v.insert(*gnorm, vec![norm(&gr)]);
            if (st.prototypes_on || !h.gated) && get(g, v, *loss)?[0].is_finite() {
                let mut p = get(g, v, *param)?.to_vec();
                let mut m = get(g, v, *momentum)?.to_vec();
                crate::ops::optim::cpu::sgd_step(&mut p, &gr, &mut m, st.lr, h);
                v.insert(*param, p);
                v.insert(*momentum, m);
            }
        }
        Op::AdamStep { t: crate::ops::optim::AdamTensors { param, grad, m1, m2, state, loss }, h } => {
            let st = crate::ops::optim::StepState::from_values(get(g, v, *state)?);
            if (st.prototypes_on || !h.gated) && get(g, v, *loss)?[0].is_finite() {
                let gr = get(g, v, *grad)?.to_vec();
                let mut p = get(g, v, *param)?.to_vec();
                let mut a = get(g, v, *m1)?.to_vec();
                let mut b = get(g, v, *m2)?.to_vec();
                let c = if h.gated { st.prototype_corrections } else { st.corrections };
                crate::ops::optim::cpu::adam_step(&mut p, &gr, &mut a, &mut b, st.lr, c, h);
                v.insert(*param, p);
                v.insert(*m1, a);
                v.insert(*m2, b);
            }
        }
    }
    Ok(())
}

// ---- Gradient rules

impl Graph {
    /// Appends the backward ops of forward `op` whose output's gradient is `gy`.
    pub(super) fn backward_rule(
        &mut self,
        op: &Op,
        gy: TensorId,
        grads: &mut HashMap<TensorId, TensorId>,
    ) -> Result<()> {
        match *op {
            Op::Conv2d { x, w, s, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::Conv2dBackwardInput { dy: gy, w, dx, s });
                    self.accumulate(grads, x, dx);
                }
                if self.needs(w) {
                    let dw = self.grad_tensor(w);
                    self.emit(Op::Conv2dBackwardWeight { x, dy: gy, dw, s });
                    self.accumulate(grads, w, dw);
                }
            }
            Op::BatchNorm { x, gamma, beta, running_mean, running_var, stats, s, .. } => {
                let (mean, var, training) = match stats {
                    Some((m, v)) => (m, v, true),
                    None => (running_mean, running_var, false),
                };
                let (dgamma, dbeta, dx) = (self.grad_tensor(gamma), self.grad_tensor(beta), self.grad_tensor(x));
                self.emit(Op::BatchNormBackward {
                    t: BatchNormBackwardTensors { x, dy: gy, mean, var, gamma, dgamma, dbeta, dx, relu_mask: None },
                    s,
                    training,
                });
                for (t, g) in [(x, dx), (gamma, dgamma), (beta, dbeta)] {
                    if self.needs(t) {
                        self.accumulate(grads, t, g);
                    }
                }
            }
            Op::Relu { x, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::ReluBackward { x, dy: gy, dx });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Add { a, b, alpha, beta, .. } => {
                for (t, k) in [(a, alpha), (b, beta)] {
                    if !self.needs(t) {
                        continue;
                    }
                    let g = if k == 1.0 {
                        gy
                    } else {
                        let g = self.grad_tensor(t);
                        self.emit(Op::Scale { x: gy, y: g, alpha: k });
                        g
                    };
                    self.accumulate(grads, t, g);
                }
            }
            Op::Scale { x, alpha, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::Scale { x: gy, y: dx, alpha });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::MaxPool { x, argmax, s, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::MaxPoolBackward { dy: gy, argmax, dx, s });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Reduce { x, y, dims, op } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::ReduceBackward { x, y, dy: gy, dx, dims, op });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Matmul { a, b, bias, s, .. } => {
                let [(al, ar, sa), (bl, br, sb)] = backward_products(s);
                let pick = |o: Operand| match o {
                    Operand::A => a,
                    Operand::B => b,
                    Operand::DC => gy,
                };
                if self.needs(a) {
                    let da = self.grad_tensor(a);
                    self.emit(Op::Matmul { a: pick(al), b: pick(ar), bias: None, c: da, s: sa });
                    self.accumulate(grads, a, da);
                }
                if self.needs(b) {
                    let db = self.grad_tensor(b);
                    self.emit(Op::Matmul { a: pick(bl), b: pick(br), bias: None, c: db, s: sb });
                    self.accumulate(grads, b, db);
                }
                if let Some(bias) = bias.filter(|t| self.needs(*t)) {
                    let dbias = self.grad_tensor(bias);
                    self.emit(Op::Reduce { x: gy, y: dbias, dims: [1, s.m, s.n], op: ReduceOp::Sum });
                    self.accumulate(grads, bias, dbias);
                }
            }
            Op::Rows { kind, x, y, rows, cols, scale } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    let src = if kind == RowKind::L2Normalize { x } else { y };
                    self.emit(Op::RowsBackward { kind, src, dy: gy, dx, rows, cols, scale });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::CrossEntropy { x, q, rows, cols, scale, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::CrossEntropyBackward { x, q, dloss: gy, dx, rows, cols, scale });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Concat { ref xs, .. } => {
                let mut offset = 0;
                for &x in xs {
                    let len = self.info(x).len();
                    if self.needs(x) {
                        let dx = self.grad_tensor(x);
                        self.emit(Op::Slice { x: gy, y: dx, offset });
                        self.accumulate(grads, x, dx);
                    }
                    offset += len;
                }
            }
            Op::Slice { x, offset, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::SliceBackward { dy: gy, dx, offset });
                    self.accumulate(grads, x, dx);
                }
            }
            // Outside autograd: constants, in-place renormalisation, codes, targets, queue.
            Op::Fill { .. }
            | Op::RenormRows { .. }
            | Op::Sinkhorn { .. }
            | Op::SwavTargets { .. }
            | Op::QueuePush { .. }
            | Op::SgdStep { .. }
            | Op::AdamStep { .. }
            | Op::AllReduce { .. } => {}
            ref other => {
                return Err(Error::Invalid(format!(
                    "no backward rule for {other:?} (a backward op in the forward graph?)"
                )));
            }
        }
        Ok(())
    }
}
