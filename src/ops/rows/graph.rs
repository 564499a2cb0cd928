//! Row-wise ops in the graph: L2-normalisation and the softmaxes over [rows, cols], and the
//! prototypes' in-place renormalisation.
use super::{
    cpu, l2_normalize_backward, l2_normalize_forward, log_softmax_backward, log_softmax_forward, softmax_backward,
    softmax_forward,
};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::elementwise;
use crate::ops::rules::{io, no_backward_rule, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    L2Normalize,
    Softmax,
    LogSoftmax,
}

#[derive(Clone, Debug)]
pub enum RowsOps {
    /// Row-wise op over [rows, cols] with `scale` (softmax(scale * x), ...).
    Rows { kind: RowKind, x: TensorId, y: TensorId, rows: usize, cols: usize, scale: f32 },
    /// `src` is the forward input for L2Normalize, the forward output for the softmaxes.
    RowsBackward { kind: RowKind, src: TensorId, dy: TensorId, dx: TensorId, rows: usize, cols: usize, scale: f32 },
    /// In place, outside autograd: each row of the persistent `x` scaled to unit L2 norm
    /// (the per-step prototype renormalisation); `scratch` holds the normalised copy.
    RenormRows { x: TensorId, scratch: TensorId, rows: usize, cols: usize },
}

impl RowsOps {
    pub fn io(&self) -> Io {
        match *self {
            Self::Rows { x, y, .. } => io(&[x], &[y]),
            Self::RowsBackward { src, dy, dx, .. } => io(&[src, dy], &[dx]),
            Self::RenormRows { x, scratch, .. } => io(&[x], &[scratch]),
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let (gpu, t) = (b.gpu(), |id| b.tensor(id));
        Ok(runs(match *self {
            Self::Rows { kind, x, y, rows: r, cols, scale } => vec![match kind {
                RowKind::L2Normalize => l2_normalize_forward(gpu, t(x)?, t(y)?, r, cols)?,
                RowKind::Softmax => softmax_forward(gpu, t(x)?, t(y)?, r, cols, scale)?,
                RowKind::LogSoftmax => log_softmax_forward(gpu, t(x)?, t(y)?, r, cols, scale)?,
            }],
            Self::RowsBackward { kind, src, dy, dx, rows: r, cols, scale } => vec![match kind {
                RowKind::L2Normalize => l2_normalize_backward(gpu, t(src)?, t(dy)?, t(dx)?, r, cols)?,
                RowKind::Softmax => softmax_backward(gpu, t(src)?, t(dy)?, t(dx)?, r, cols, scale)?,
                RowKind::LogSoftmax => log_softmax_backward(gpu, t(src)?, t(dy)?, t(dx)?, r, cols, scale)?,
            }],
            Self::RenormRows { x, scratch, rows: r, cols } => vec![
                l2_normalize_forward(gpu, t(x)?, t(scratch)?, r, cols)?,
                elementwise::copy(gpu, t(scratch)?, t(x)?, 0, 0, r * cols)?,
            ],
        }))
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match *self {
            Self::Rows { kind, x, y, cols, scale, .. } => {
                let xv = v.get(x)?;
                let out = match kind {
                    RowKind::L2Normalize => cpu::l2_normalize_forward(xv, cols),
                    RowKind::Softmax => cpu::softmax_forward(xv, cols, scale as f64),
                    RowKind::LogSoftmax => cpu::log_softmax_forward(xv, cols, scale as f64),
                };
                v.set(y, out);
            }
            Self::RowsBackward { kind, src, dy, dx, cols, scale, .. } => {
                let (sv, dyv) = (v.get(src)?, v.get(dy)?);
                let out = match kind {
                    RowKind::L2Normalize => cpu::l2_normalize_backward(sv, dyv, cols),
                    RowKind::Softmax => cpu::softmax_backward(sv, dyv, cols, scale as f64),
                    RowKind::LogSoftmax => cpu::log_softmax_backward(sv, dyv, cols, scale as f64),
                };
                v.set(dx, out);
            }
            Self::RenormRows { x, scratch, cols, .. } => {
                let out = cpu::l2_normalize_forward(v.get(x)?, cols);
                v.set(scratch, out.clone());
                v.set(x, out);
            }
        }
        Ok(())
    }

    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self>,
    {
        match *self {
            Self::Rows { kind, x, y, rows, cols, scale } => {
                let src = if kind == RowKind::L2Normalize { x } else { y };
                tape.propagate(x, |dx| Self::RowsBackward { kind, src, dy: gy, dx, rows, cols, scale });
                Ok(())
            }
            Self::RenormRows { .. } => Ok(()),
            Self::RowsBackward { .. } => no_backward_rule(self),
        }
    }
}
