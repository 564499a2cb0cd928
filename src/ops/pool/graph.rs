//! Max-pooling in the graph (global average pooling is a reduce).
use super::{cpu, max_pool_backward, max_pool_forward, PoolShape};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::rules::{io, no_backward_rule, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum PoolOps {
    /// `argmax`: the index of each output's maximum within its input plane.
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
}

impl PoolOps {
    pub fn io(&self) -> Io {
        match *self {
            Self::MaxPool { x, y, argmax, .. } => io(&[x], &[y, argmax]),
            Self::MaxPoolBackward { dy, argmax, dx, .. } => io(&[dy, argmax], &[dx]),
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let (gpu, t) = (b.gpu(), |id| b.tensor(id));
        Ok(runs(vec![match *self {
            Self::MaxPool { x, y, argmax, s } => max_pool_forward(gpu, t(x)?, t(y)?, t(argmax)?, s)?,
            Self::MaxPoolBackward { dy, argmax, dx, s } => max_pool_backward(gpu, t(dy)?, t(argmax)?, t(dx)?, s)?,
        }]))
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match *self {
            Self::MaxPool { x, y, argmax, s } => {
                let (out, arg) = cpu::max_pool_forward(v.get(x)?, s);
                v.set(y, out);
                v.set(argmax, arg.into_iter().map(|a| a as f64).collect());
            }
            Self::MaxPoolBackward { dy, argmax, dx, s } => {
                let arg: Vec<usize> = v.get(argmax)?.iter().map(|&a| a as usize).collect();
                let out = cpu::max_pool_backward(v.get(dy)?, &arg, s);
                v.set(dx, out);
            }
        }
        Ok(())
    }

    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self>,
    {
        let Self::MaxPool { x, argmax, s, .. } = *self else { return no_backward_rule(self) };
        tape.propagate(x, |dx| Self::MaxPoolBackward { dy: gy, argmax, dx, s });
        Ok(())
    }
}
