//! Batch-norm in the graph. Training mode writes the batch statistics (kept for backward)
//! and updates the running ones in place; eval mode normalises with the running ones.
use super::{
    backward_steps, cpu, forward_eval, forward_train_steps, BatchNormBackwardTensors, BatchNormShape, BatchNormTensors,
};
use crate::error::Result;
use crate::gpu::Step;
use crate::ops::elementwise;
use crate::ops::rules::{io, no_backward_rule, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum BatchNormOps {
    /// `stats`: where training mode writes the batch mean and variance (None: eval mode).
    Forward { t: BatchNormTensors<TensorId>, stats: Option<(TensorId, TensorId)>, s: BatchNormShape },
    /// With `relu_mask` (set by the plan's ReLU fusion) `dy` is the gradient of the fused
    /// ReLU's output `relu_mask`, masked in the same passes.
    Backward { t: BatchNormBackwardTensors<TensorId>, s: BatchNormShape, training: bool },
}

impl BatchNormOps {
    /// The in-place running statistics are not listed: nothing in a step reads them after.
    pub fn io(&self) -> Io {
        match self {
            Self::Forward { t: BatchNormTensors { x, gamma, beta, running_mean, running_var, y }, stats, .. } => {
                let reads = [*x, *gamma, *beta, *running_mean, *running_var];
                match stats {
                    Some((m, v)) => io(&reads, &[*y, *m, *v]),
                    None => io(&reads, &[*y]),
                }
            }
            // With a fused ReLU the masked gradient is stored over `dy`.
            Self::Backward {
                t: BatchNormBackwardTensors { x, dy, relu_mask, mean, var, gamma, dgamma, dbeta, dx },
                ..
            } => match relu_mask {
                Some(m) => io(&[*x, *dy, *mean, *var, *gamma, *m], &[*dgamma, *dbeta, *dx, *dy]),
                None => io(&[*x, *dy, *mean, *var, *gamma], &[*dgamma, *dbeta, *dx]),
            },
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let gpu = b.gpu();
        match self {
            Self::Forward { t, stats: Some((m, var)), s } => {
                forward_train_steps(gpu, &t.map(|id| b.tensor(id))?, (b.tensor(*m)?, b.tensor(*var)?), *s, true)
            }
            Self::Forward { t, stats: None, s } => {
                Ok(vec![Step::Run(forward_eval(gpu, &t.map(|id| b.tensor(id))?, *s)?)])
            }
            Self::Backward { t, s, training } => backward_steps(gpu, &t.map(|id| b.tensor(id))?, *s, *training),
        }
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match self {
            Self::Forward { t, stats: Some((m, var)), s } => {
                let (out, mean, bvar) = cpu::forward_train(v.get(t.x)?, v.get(t.gamma)?, v.get(t.beta)?, s);
                let (rm, rv) = cpu::update_running(v.get(t.running_mean)?, v.get(t.running_var)?, &mean, &bvar, s);
                v.set(t.y, out);
                v.set(*m, mean);
                v.set(*var, bvar);
                v.set(t.running_mean, rm);
                v.set(t.running_var, rv);
            }
            Self::Forward { t, stats: None, s } => {
                let (rm, rv) = (v.get(t.running_mean)?, v.get(t.running_var)?);
                let out = cpu::apply(v.get(t.x)?, rm, rv, v.get(t.gamma)?, v.get(t.beta)?, s);
                v.set(t.y, out);
            }
            Self::Backward { t, s, training } => {
                let masked = match t.relu_mask {
                    Some(m) => Some(elementwise::cpu::relu_backward(v.get(m)?, v.get(t.dy)?)),
                    None => None,
                };
                let dy = match &masked {
                    Some(m) => m,
                    None => v.get(t.dy)?,
                };
                let (d, dg, db) =
                    cpu::backward(v.get(t.x)?, dy, v.get(t.mean)?, v.get(t.var)?, v.get(t.gamma)?, s, *training);
                v.set(t.dx, d);
                v.set(t.dgamma, dg);
                v.set(t.dbeta, db);
            }
        }
        Ok(())
    }

    /// One backward op gives all three gradients; those nothing needs are left unused.
    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self>,
    {
        let Self::Forward { t, stats, s } = self else { return no_backward_rule(self) };
        let (mean, var, training) = match *stats {
            Some((m, v)) => (m, v, true),
            None => (t.running_mean, t.running_var, false),
        };
        let (x, gamma, beta) = (t.x, t.gamma, t.beta);
        let (dgamma, dbeta, dx) = (tape.grad_tensor(gamma), tape.grad_tensor(beta), tape.grad_tensor(x));
        let tensors = BatchNormBackwardTensors { x, dy: gy, mean, var, gamma, dgamma, dbeta, dx, relu_mask: None };
        tape.emit(Self::Backward { t: tensors, s: *s, training }.into());
        for (t, g) in [(x, dx), (gamma, dgamma), (beta, dbeta)] {
            if tape.needs(t) {
                tape.accumulate(t, g);
            }
        }
        Ok(())
    }
}
