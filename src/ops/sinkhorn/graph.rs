//! Sinkhorn-Knopp codes and the swapped-prediction targets in the graph: no gradient flows
//! through either (the codes are constants of the step).
use super::{cpu, sinkhorn_steps, targets, SinkhornShape};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::rules::{io, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum SinkhornOps {
    /// Sinkhorn-Knopp codes of `x` = [queue rows; batch rows] x K; `active` holds how many
    /// queue rows are filled.
    Sinkhorn { x: TensorId, active: TensorId, codes: TensorId, s: SinkhornShape },
    /// Swapped-prediction targets from the codes of the assignment crops.
    SwavTargets { codes: TensorId, t: TensorId, batch: usize, n_crops: usize, assign: Vec<usize> },
}

impl SinkhornOps {
    pub fn io(&self) -> Io {
        match self {
            Self::Sinkhorn { x, active, codes, .. } => io(&[*x, *active], &[*codes]),
            Self::SwavTargets { codes, t, .. } => io(&[*codes], &[*t]),
        }
    }

    /// Sinkhorn's sums meet over the ranks of a data-parallel job (its exchanges).
    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let (gpu, t) = (b.gpu(), |id| b.tensor(id));
        match self {
            Self::Sinkhorn { x, active, codes, s } => sinkhorn_steps(gpu, t(*x)?, t(*active)?, t(*codes)?, *s),
            Self::SwavTargets { codes, t: targets_id, batch, n_crops, assign } => {
                let k = t(*targets_id)?.shape()[1];
                Ok(runs(vec![targets(gpu, t(*codes)?, t(*targets_id)?, *batch, *n_crops, k, assign)?]))
            }
        }
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match self {
            Self::Sinkhorn { x, active, codes, s } => {
                let act = v.get(*active)?[0].max(0.0) as usize;
                let out = cpu::sinkhorn(v.get(*x)?, s.queue_rows, act, s.batch, s.k, s.epsilon as f64, s.iterations);
                v.set(*codes, out);
            }
            Self::SwavTargets { codes, t, batch, n_crops, assign } => {
                let k = v.shape(*t)[1];
                let out = cpu::targets(v.get(*codes)?, *batch, *n_crops, k, assign);
                v.set(*t, out);
            }
        }
        Ok(())
    }

    /// Outside autograd.
    pub fn backward<T: Tape>(&self, _gy: TensorId, _tape: &mut T) -> Result<()> {
        Ok(())
    }
}
