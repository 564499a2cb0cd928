//! The optimizer's updates in the graph: in place on persistent tensors, outside autograd.
use super::{adam_step, cpu, sgd_step, AdamHyper, AdamTensors, SgdHyper, SgdTensors, StepState};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::rules::{io, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum OptimOps {
    /// SGD(+LARS) on a parameter and its momentum.
    SgdStep { t: SgdTensors<TensorId>, h: SgdHyper },
    /// Adam on a parameter and its two moments.
    AdamStep { t: AdamTensors<TensorId>, h: AdamHyper },
}

impl OptimOps {
    /// The parameter and optimizer state are updated in place (persistent tensors).
    pub fn io(&self) -> Io {
        match *self {
            Self::SgdStep { t: SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }, .. } => {
                io(&[param, grad, momentum, state, loss], &[pnorm, gnorm])
            }
            Self::AdamStep { t: AdamTensors { param, grad, m1, m2, state, loss }, .. } => {
                io(&[param, grad, m1, m2, state, loss], &[])
            }
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let gpu = b.gpu();
        Ok(runs(match self {
            Self::SgdStep { t, h } => sgd_step(gpu, &t.map(|id| b.tensor(id))?, *h)?,
            Self::AdamStep { t, h } => vec![adam_step(gpu, &t.map(|id| b.tensor(id))?, *h)?],
        }))
    }

    /// The update is skipped while a gated parameter is frozen, and on a non-finite loss.
    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match *self {
            Self::SgdStep { t: SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }, h } => {
                let st = StepState::from_values(v.get(state)?);
                let gr = v.get(grad)?.to_vec();
                let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
                let pn = norm(v.get(param)?);
                v.set(pnorm, vec![pn]);
                v.set(gnorm, vec![norm(&gr)]);
                if (st.prototypes_on || !h.gated) && v.get(loss)?[0].is_finite() {
                    let mut p = v.get(param)?.to_vec();
                    let mut m = v.get(momentum)?.to_vec();
                    cpu::sgd_step(&mut p, &gr, &mut m, st.lr, &h);
                    v.set(param, p);
                    v.set(momentum, m);
                }
            }
            Self::AdamStep { t: AdamTensors { param, grad, m1, m2, state, loss }, h } => {
                let st = StepState::from_values(v.get(state)?);
                if (st.prototypes_on || !h.gated) && v.get(loss)?[0].is_finite() {
                    let gr = v.get(grad)?.to_vec();
                    let mut p = v.get(param)?.to_vec();
                    let mut a = v.get(m1)?.to_vec();
                    let mut b = v.get(m2)?.to_vec();
                    let c = if h.gated { st.prototype_corrections } else { st.corrections };
                    cpu::adam_step(&mut p, &gr, &mut a, &mut b, st.lr, c, &h);
                    v.set(param, p);
                    v.set(m1, a);
                    v.set(m2, b);
                }
            }
        }
        Ok(())
    }

    /// Outside autograd.
    pub fn backward<T: Tape>(&self, _gy: TensorId, _tape: &mut T) -> Result<()> {
        Ok(())
    }
}
