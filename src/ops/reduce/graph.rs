//! Reductions over the middle axis in the graph.
use super::{cpu, reduce_axis, reduce_axis_backward, ReduceOp};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::rules::{io, no_backward_rule, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum ReduceOps {
    /// y[o, i] = op over r of x[o, r, i], `dims` = [o, r, i].
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
}

impl ReduceOps {
    pub fn io(&self) -> Io {
        match *self {
            Self::Reduce { x, y, .. } => io(&[x], &[y]),
            Self::ReduceBackward { x, y, dy, dx, .. } => io(&[x, y, dy], &[dx]),
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let (gpu, t) = (b.gpu(), |id| b.tensor(id));
        Ok(runs(match *self {
            Self::Reduce { x, y, dims: [o, r, i], op } => reduce_axis(gpu, t(x)?, t(y)?, o, r, i, op)?,
            Self::ReduceBackward { x, y, dy, dx, dims: [o, r, i], op } => {
                vec![reduce_axis_backward(gpu, t(x)?, t(y)?, t(dy)?, t(dx)?, o, r, i, op)?]
            }
        }))
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match *self {
            Self::Reduce { x, y, dims: [o, r, i], op } => {
                let out = cpu::reduce_axis(v.get(x)?, o, r, i, op);
                v.set(y, out);
            }
            Self::ReduceBackward { x, dy, dx, dims: [o, r, i], op, .. } => {
                let out = cpu::reduce_axis_backward(v.get(x)?, v.get(dy)?, o, r, i, op);
                v.set(dx, out);
            }
        }
        Ok(())
    }

    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self>,
    {
        let Self::Reduce { x, y, dims, op } = *self else { return no_backward_rule(self) };
        tape.propagate(x, |dx| Self::ReduceBackward { x, y, dy: gy, dx, dims, op });
        Ok(())
    }
}
