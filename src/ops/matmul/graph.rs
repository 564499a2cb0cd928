//! The dense product in the graph (with an optional bias), on the chooser's variant or the
//! tuner's fastest.
use super::{backward_products, cpu, matmul, tuned, GemmVariant, MatmulShape, Operand};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::reduce::{ReduceOp, ReduceOps};
use crate::ops::rules::{io, Buffers, Io, Tape, TensorId, Values};

/// c = op(a) op(b) (+ bias per column), `s` says which operands are transposed.
#[derive(Clone, Debug)]
pub struct MatmulOps {
    pub a: TensorId,
    pub b: TensorId,
    pub bias: Option<TensorId>,
    pub c: TensorId,
    pub s: MatmulShape,
}

impl MatmulOps {
    pub fn io(&self) -> Io {
        let reads: Vec<TensorId> = [Some(self.a), Some(self.b), self.bias].into_iter().flatten().collect();
        io(&reads, &[self.c])
    }

    pub fn lower(&self, bufs: &impl Buffers) -> Result<Vec<Step>> {
        let (gpu, s) = (bufs.gpu(), self.s);
        let bias = self.bias.map(|b| bufs.tensor(b)).transpose()?;
        let (a, b, c) = (bufs.tensor(self.a)?, bufs.tensor(self.b)?, bufs.tensor(self.c)?);
        let v = GemmVariant::pick(gpu, s.m, s.n);
        Ok(runs(tuned(gpu, &format!("matmul {s:?}"), v, |v| matmul(gpu, a, b, bias, c, s, v))?))
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        let bias = self.bias.map(|b| v.get(b).map(|x| x.to_vec())).transpose()?;
        let out = cpu::matmul(v.get(self.a)?, v.get(self.b)?, bias.as_deref(), self.s);
        v.set(self.c, out);
        Ok(())
    }

    /// dA and dB are products of the other operand and dC; dBias sums dC's rows.
    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self> + From<ReduceOps>,
    {
        let Self { a, b, bias, s, .. } = *self;
        let [(al, ar, sa), (bl, br, sb)] = backward_products(s);
        let pick = |o: Operand| match o {
            Operand::A => a,
            Operand::B => b,
            Operand::DC => gy,
        };
        tape.propagate(a, |da| Self { a: pick(al), b: pick(ar), bias: None, c: da, s: sa });
        tape.propagate(b, |db| Self { a: pick(bl), b: pick(br), bias: None, c: db, s: sb });
        if let Some(bias) = bias {
            tape.propagate(bias, |dbias| ReduceOps::Reduce { x: gy, y: dbias, dims: [1, s.m, s.n], op: ReduceOp::Sum });
        }
        Ok(())
    }
}
