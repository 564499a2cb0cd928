//! Reverse-mode differentiation: walks the forward ops backwards and appends each op's
//! backward rule as ops. A tensor read by several ops sums its gradient contributions; no
//! gradient is computed for tensors that do not lead to a parameter (or a grad-input).
use std::collections::HashMap;

use super::op::GradTape;
use super::{Graph, Kind, Op, TensorId};
use crate::error::{Error, Result};
use crate::ops::elementwise::ElementwiseOps;
use crate::ops::rules::Tape;

impl Graph {
    /// Appends the backward graph of the scalar `loss` ([1] elements); afterwards
    /// `self.grads` maps every parameter (and grad-input) to its gradient, which is kept.
    pub fn backward(&mut self, loss: TensorId) -> Result<()> {
        self.check_backward(loss)?;
        let seed = self.constant("grad.loss", &[1], vec![1.0])?;
        self.backward_from(loss, seed)
    }

    /// `backward` seeded with `seed` ([1]) as the loss's gradient instead of 1: loss scaling
    /// seeds it with the scale S, an input written every step, and every gradient is S times
    /// the loss's.
    pub fn backward_scaled(&mut self, loss: TensorId, seed: TensorId) -> Result<()> {
        self.check_backward(loss)?;
        if self.info(seed).len() != 1 {
            return Err(Error::Invalid(format!("the loss's gradient seed must be [1], got {:?}", self.shape(seed))));
        }
        self.backward_from(loss, seed)
    }

    fn check_backward(&self, loss: TensorId) -> Result<()> {
        if self.info(loss).len() != 1 {
            return Err(Error::Invalid(format!("backward needs a scalar loss, got shape {:?}", self.shape(loss))));
        }
        if self.ops.len() != self.forward_len {
            return Err(Error::Invalid("backward was already called on this graph".into()));
        }
        Ok(())
    }

    fn backward_from(&mut self, loss: TensorId, seed: TensorId) -> Result<()> {
        let mut grads: HashMap<TensorId, TensorId> = HashMap::new();
        grads.insert(loss, seed);
        let forward: Vec<Op> = self.ops[..self.forward_len].to_vec();
        for op in forward.iter().rev() {
            let Some(gy) = op.outputs().first().and_then(|y| grads.get(y)).copied() else {
                continue; // nothing downstream needs this op's output
            };
            GradTape { graph: self, grads: &mut grads }.backward_rule(op, gy)?;
        }
        let wanted: Vec<TensorId> = (0..self.tensors.len())
            .map(TensorId)
            .filter(|t| self.info(*t).requires_grad && matches!(self.info(*t).kind, Kind::Parameter | Kind::Input))
            .collect();
        for t in wanted {
            let g = match grads.get(&t) {
                Some(&g) => g,
                None => {
                    // Does not influence the loss: its gradient is zero.
                    let mut tape = GradTape { graph: self, grads: &mut grads };
                    let g = tape.grad_tensor(t);
                    tape.emit(ElementwiseOps::Fill { y: g, value: 0.0 }.into());
                    g
                }
            };
            let name = format!("grad.{}", self.info(t).name);
            self.keep(g, &name);
            self.grads.insert(t, g);
            grads.insert(t, g);
        }
        self.grad_of = grads;
        Ok(())
    }
}
