//! The swapped-prediction cross-entropy in the graph.
use super::{cpu, cross_entropy_backward, cross_entropy_forward};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::rules::{io, no_backward_rule, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum LossOps {
    /// loss[i] = -sum_j q[i, j] log softmax(scale * x[i])_j, one value per row.
    CrossEntropy { x: TensorId, q: TensorId, loss: TensorId, rows: usize, cols: usize, scale: f32 },
    CrossEntropyBackward {
        x: TensorId,
        q: TensorId,
        dloss: TensorId,
        dx: TensorId,
        rows: usize,
        cols: usize,
        scale: f32,
    },
}

impl LossOps {
    pub fn io(&self) -> Io {
        match *self {
            Self::CrossEntropy { x, q, loss, .. } => io(&[x, q], &[loss]),
            Self::CrossEntropyBackward { x, q, dloss, dx, .. } => io(&[x, q, dloss], &[dx]),
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let (gpu, t) = (b.gpu(), |id| b.tensor(id));
        Ok(runs(vec![match *self {
            Self::CrossEntropy { x, q, loss, rows, cols, scale } => {
                cross_entropy_forward(gpu, t(x)?, t(q)?, t(loss)?, rows, cols, scale)?
            }
            Self::CrossEntropyBackward { x, q, dloss, dx, rows, cols, scale } => {
                cross_entropy_backward(gpu, t(x)?, t(q)?, t(dloss)?, t(dx)?, rows, cols, scale)?
            }
        }]))
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match *self {
            Self::CrossEntropy { x, q, loss, cols, scale, .. } => {
                let out = cpu::cross_entropy_forward(v.get(x)?, v.get(q)?, cols, scale as f64);
                v.set(loss, out);
            }
            Self::CrossEntropyBackward { x, q, dloss, dx, cols, scale, .. } => {
                let out = cpu::cross_entropy_backward(v.get(x)?, v.get(q)?, v.get(dloss)?, cols, scale as f64);
                v.set(dx, out);
            }
        }
        Ok(())
    }

    /// No gradient flows to the targets `q` (Sinkhorn's codes are constants of the step).
    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self>,
    {
        let Self::CrossEntropy { x, q, rows, cols, scale, .. } = *self else { return no_backward_rule(self) };
        tape.propagate(x, |dx| Self::CrossEntropyBackward { x, q, dloss: gy, dx, rows, cols, scale });
        Ok(())
    }
}
