//! The optimizer's updates in the graph: in place on persistent tensors, outside autograd.
use super::{
    adam_step, check_finite, cpu, sgd_norms, sgd_step, AdamHyper, AdamTensors, SgdHyper, SgdTensors, StepState,
};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::rules::{io, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum OptimOps {
    /// SGD(+LARS) on a parameter and its momentum.
    SgdStep { t: SgdTensors<TensorId>, h: SgdHyper },
    /// Adam on a parameter and its two moments.
    AdamStep { t: AdamTensors<TensorId>, h: AdamHyper },
    /// Loss scaling: LARS's norms of a parameter and its (scaled) gradient, computed before
    /// any parameter moves so that the check sees them (an `unscale` SgdStep reads them).
    SgdNorms { param: TensorId, grad: TensorId, pnorm: TensorId, gnorm: TensorId },
    /// Loss scaling, in place on `found_inf` ([1], 0 at the step's start): +inf when `x`
    /// holds a NaN or an infinity.
    CheckFinite { x: TensorId, found_inf: TensorId },
}

impl OptimOps {
    /// The parameter and optimizer state are updated in place (persistent tensors).
    pub fn io(&self) -> Io {
        match *self {
            Self::SgdStep { t: SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }, h } => {
                if h.lars && h.unscale {
                    io(&[param, grad, momentum, pnorm, gnorm, state, loss], &[])
                } else {
                    io(&[param, grad, momentum, state, loss], &[pnorm, gnorm])
                }
            }
            Self::AdamStep { t: AdamTensors { param, grad, m1, m2, state, loss }, .. } => {
                io(&[param, grad, m1, m2, state, loss], &[])
            }
            Self::SgdNorms { param, grad, pnorm, gnorm } => io(&[param, grad], &[pnorm, gnorm]),
            Self::CheckFinite { x, found_inf } => io(&[x, found_inf], &[found_inf]),
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let gpu = b.gpu();
        Ok(runs(match *self {
            Self::SgdStep { t, h } => sgd_step(gpu, &t.map(|id| b.tensor(id))?, h)?,
            Self::AdamStep { t, h } => vec![adam_step(gpu, &t.map(|id| b.tensor(id))?, h)?],
            Self::SgdNorms { param, grad, pnorm, gnorm } => {
                sgd_norms(gpu, b.tensor(param)?, b.tensor(grad)?, b.tensor(pnorm)?, b.tensor(gnorm)?)?
            }
            Self::CheckFinite { x, found_inf } => vec![check_finite(gpu, b.tensor(x)?, b.tensor(found_inf)?)?],
        }))
    }

    /// The update is skipped while a gated parameter is frozen, and on a non-finite loss (with
    /// loss scaling: found_inf); the gradients are unscaled first with loss scaling.
    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
        match *self {
            Self::SgdStep { t: SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }, h } => {
                let st = StepState::from_values(v.get(state)?);
                let gr = unscaled(v.get(grad)?, &st, h.unscale);
                if !(h.lars && h.unscale) {
                    let pn = norm(v.get(param)?);
                    v.set(pnorm, vec![pn]);
                    v.set(gnorm, vec![norm(&gr)]);
                }
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
                    let gr = unscaled(v.get(grad)?, &st, h.unscale);
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
            Self::SgdNorms { param, grad, pnorm, gnorm } => {
                let (pn, gn) = (norm(v.get(param)?), norm(v.get(grad)?));
                v.set(pnorm, vec![pn]);
                v.set(gnorm, vec![gn]);
            }
            Self::CheckFinite { x, found_inf } => {
                let found = cpu::check_finite(v.get(x)?, v.get(found_inf)?[0]);
                v.set(found_inf, vec![found]);
            }
        }
        Ok(())
    }

    /// Outside autograd.
    pub fn backward<T: Tape>(&self, _gy: TensorId, _tape: &mut T) -> Result<()> {
        Ok(())
    }
}

/// The gradient as the update sees it: times the step state's 1/S with loss scaling.
fn unscaled(g: &[f64], st: &StepState, unscale: bool) -> Vec<f64> {
    match unscale {
        true => g.iter().map(|x| x * st.inv_scale).collect(),
        false => g.to_vec(),
    }
}
