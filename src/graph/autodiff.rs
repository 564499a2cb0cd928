//! Reverse-mode differentiation: walks the forward ops backwards and appends each op's
//! backward rule as ops. A tensor read by several ops sums its gradient contributions; no
//! gradient is computed for tensors that do not lead to a parameter (or a grad-input).
use std::collections::HashMap;

use super::{Graph, Kind, Op, TensorId};
use crate::error::{Error, Result};

impl Graph {
    pub(super) fn grad_tensor(&mut self, like: TensorId) -> TensorId {
        let shape = self.shape(like).to_vec();
        let name = format!("grad.{}", self.info(like).name);
        self.add_tensor(&name, &shape, Kind::Activation, false)
    }

    pub(super) fn emit(&mut self, op: Op) {
        self.ops.push(op);
    }

    pub(super) fn accumulate(&mut self, grads: &mut HashMap<TensorId, TensorId>, t: TensorId, g: TensorId) {
        let total = match grads.get(&t) {
            Some(&old) => {
                let sum = self.grad_tensor(t);
                self.emit(Op::Add { a: old, b: g, c: sum, alpha: 1.0, beta: 1.0, relu: false });
                sum
            }
            None => g,
        };
        grads.insert(t, total);
    }

    /// Appends the backward graph of the scalar `loss` ([1] elements); afterwards
    /// `self.grads` maps every parameter (and grad-input) to its gradient, which is kept.
    pub fn backward(&mut self, loss: TensorId) -> Result<()> {
        if self.info(loss).len() != 1 {
            return Err(Error::Invalid(format!("backward needs a scalar loss, got shape {:?}", self.shape(loss))));
        }
        if self.ops.len() != self.forward_len {
            return Err(Error::Invalid("backward was already called on this graph".into()));
        }
        let seed = self.constant("grad.loss", &[1], vec![1.0])?;
        let mut grads: HashMap<TensorId, TensorId> = HashMap::new();
        grads.insert(loss, seed);
        let forward: Vec<Op> = self.ops[..self.forward_len].to_vec();
        for op in forward.iter().rev() {
            let Some(gy) = op.outputs().first().and_then(|y| grads.get(y)).copied() else {
                continue; // nothing downstream needs this op's output
            };
            self.backward_rule(op, gy, &mut grads)?;
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
                    let g = self.grad_tensor(t);
                    self.emit(Op::Fill { y: g, value: 0.0 });
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

    pub(super) fn needs(&self, t: TensorId) -> bool {
        self.info(t).requires_grad
    }
}
