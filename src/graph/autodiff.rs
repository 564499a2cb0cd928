//! Reverse-mode differentiation: walks the forward ops backwards and appends each op's
//! backward rule as ops. A tensor read by several ops sums its gradient contributions; no
//! gradient is computed for tensors that do not lead to a parameter (or a grad-input).
use std::collections::HashMap;

use super::{Graph, Kind, Op, RowKind, TensorId};
use crate::error::{Error, Result};
use crate::ops::batchnorm::BatchNormBackwardTensors;
use crate::ops::matmul::{backward_products, Operand};
use crate::ops::reduce::ReduceOp;

impl Graph {
    fn grad_tensor(&mut self, like: TensorId) -> TensorId {
        let shape = self.shape(like).to_vec();
        let name = format!("grad.{}", self.info(like).name);
        self.add_tensor(&name, &shape, Kind::Activation, false)
    }

    fn emit(&mut self, op: Op) {
        self.ops.push(op);
    }

    fn accumulate(&mut self, grads: &mut HashMap<TensorId, TensorId>, t: TensorId, g: TensorId) {
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

    fn needs(&self, t: TensorId) -> bool {
        self.info(t).requires_grad
    }

    fn backward_rule(&mut self, op: &Op, gy: TensorId, grads: &mut HashMap<TensorId, TensorId>) -> Result<()> {
        match *op {
            Op::Conv2d { x, w, s, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::Conv2dBackwardInput { dy: gy, w, dx, s });
                    self.accumulate(grads, x, dx);
                }
                if self.needs(w) {
                    let dw = self.grad_tensor(w);
                    self.emit(Op::Conv2dBackwardWeight { x, dy: gy, dw, s });
                    self.accumulate(grads, w, dw);
                }
            }
            Op::BatchNorm { x, gamma, beta, running_mean, running_var, stats, s, .. } => {
                let (mean, var, training) = match stats {
                    Some((m, v)) => (m, v, true),
                    None => (running_mean, running_var, false),
                };
                let (dgamma, dbeta, dx) = (self.grad_tensor(gamma), self.grad_tensor(beta), self.grad_tensor(x));
                self.emit(Op::BatchNormBackward {
                    t: BatchNormBackwardTensors { x, dy: gy, mean, var, gamma, dgamma, dbeta, dx, relu_mask: None },
                    s,
                    training,
                });
                for (t, g) in [(x, dx), (gamma, dgamma), (beta, dbeta)] {
                    if self.needs(t) {
                        self.accumulate(grads, t, g);
                    }
                }
            }
            Op::Relu { x, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::ReluBackward { x, dy: gy, dx });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Add { a, b, alpha, beta, .. } => {
                for (t, k) in [(a, alpha), (b, beta)] {
                    if !self.needs(t) {
                        continue;
                    }
                    let g = if k == 1.0 {
                        gy
                    } else {
                        let g = self.grad_tensor(t);
                        self.emit(Op::Scale { x: gy, y: g, alpha: k });
                        g
                    };
                    self.accumulate(grads, t, g);
                }
            }
            Op::Scale { x, alpha, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::Scale { x: gy, y: dx, alpha });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::MaxPool { x, argmax, s, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::MaxPoolBackward { dy: gy, argmax, dx, s });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Reduce { x, y, dims, op } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::ReduceBackward { x, y, dy: gy, dx, dims, op });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Matmul { a, b, bias, s, .. } => {
                let [(al, ar, sa), (bl, br, sb)] = backward_products(s);
                let pick = |o: Operand| match o {
                    Operand::A => a,
                    Operand::B => b,
                    Operand::DC => gy,
                };
                if self.needs(a) {
                    let da = self.grad_tensor(a);
                    self.emit(Op::Matmul { a: pick(al), b: pick(ar), bias: None, c: da, s: sa });
                    self.accumulate(grads, a, da);
                }
                if self.needs(b) {
                    let db = self.grad_tensor(b);
                    self.emit(Op::Matmul { a: pick(bl), b: pick(br), bias: None, c: db, s: sb });
                    self.accumulate(grads, b, db);
                }
                if let Some(bias) = bias.filter(|t| self.needs(*t)) {
                    let dbias = self.grad_tensor(bias);
                    self.emit(Op::Reduce { x: gy, y: dbias, dims: [1, s.m, s.n], op: ReduceOp::Sum });
                    self.accumulate(grads, bias, dbias);
                }
            }
            Op::Rows { kind, x, y, rows, cols, scale } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    let src = if kind == RowKind::L2Normalize { x } else { y };
                    self.emit(Op::RowsBackward { kind, src, dy: gy, dx, rows, cols, scale });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::CrossEntropy { x, q, rows, cols, scale, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::CrossEntropyBackward { x, q, dloss: gy, dx, rows, cols, scale });
                    self.accumulate(grads, x, dx);
                }
            }
            Op::Concat { ref xs, .. } => {
                let mut offset = 0;
                for &x in xs {
                    let len = self.info(x).len();
                    if self.needs(x) {
                        let dx = self.grad_tensor(x);
                        self.emit(Op::Slice { x: gy, y: dx, offset });
                        self.accumulate(grads, x, dx);
                    }
                    offset += len;
                }
            }
            Op::Slice { x, offset, .. } => {
                if self.needs(x) {
                    let dx = self.grad_tensor(x);
                    self.emit(Op::SliceBackward { dy: gy, dx, offset });
                    self.accumulate(grads, x, dx);
                }
            }
            // Outside autograd: constants, in-place renormalisation, codes, targets, queue.
            Op::Fill { .. }
            | Op::RenormRows { .. }
            | Op::Sinkhorn { .. }
            | Op::SwavTargets { .. }
            | Op::QueuePush { .. }
            | Op::SgdStep { .. }
            | Op::AdamStep { .. } => {}
            ref other => {
                return Err(Error::Invalid(format!(
                    "no backward rule for {other:?} (a backward op in the forward graph?)"
                )));
            }
        }
        Ok(())
    }
}
