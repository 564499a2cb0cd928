//! Convolution in the graph: forward and the two backward passes, each on the chooser's GEMM
//! variant or the tuner's fastest (`matmul::tuned`).
use super::{backward_input, backward_weight, cpu, forward, weight_grad_splits, Conv2dShape, ConvKernel, ConvPass};
use crate::error::Result;
use crate::gpu::{runs, Step};
use crate::ops::matmul::tuned;
use crate::ops::rules::{io, no_backward_rule, Buffers, Io, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum ConvOps {
    Forward { x: TensorId, w: TensorId, y: TensorId, s: Conv2dShape },
    BackwardInput { dy: TensorId, w: TensorId, dx: TensorId, s: Conv2dShape },
    BackwardWeight { x: TensorId, dy: TensorId, dw: TensorId, s: Conv2dShape },
}

impl ConvOps {
    pub fn io(&self) -> Io {
        match *self {
            Self::Forward { x, w, y, .. } => io(&[x, w], &[y]),
            Self::BackwardInput { dy, w, dx, .. } => io(&[dy, w], &[dx]),
            Self::BackwardWeight { x, dy, dw, .. } => io(&[x, dy], &[dw]),
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let gpu = b.gpu();
        Ok(runs(match *self {
            Self::Forward { x, w, y, s } => {
                let (x, w, y) = (b.tensor(x)?, b.tensor(w)?, b.tensor(y)?);
                let pass = ConvPass::Forward;
                tuned(gpu, &format!("conv2d_forward {s:?}"), ConvKernel::default_variant(gpu, &s, pass), |v| {
                    forward(gpu, x, w, y, s, ConvKernel::with_variant(gpu, &s, pass, v))
                })?
            }
            Self::BackwardInput { dy, w, dx, s } => {
                let (dy, w, dx) = (b.tensor(dy)?, b.tensor(w)?, b.tensor(dx)?);
                let pass = ConvPass::BackwardInput;
                let v = ConvKernel::default_variant(gpu, &s, pass);
                tuned(gpu, &format!("conv2d_backward_input {s:?}"), v, |v| {
                    backward_input(gpu, dy, w, dx, s, ConvKernel::with_variant(gpu, &s, pass, v))
                })?
            }
            Self::BackwardWeight { x, dy, dw, s } => {
                let (x, dy, dw) = (b.tensor(x)?, b.tensor(dy)?, b.tensor(dw)?);
                let pass = ConvPass::BackwardWeight;
                let v = ConvKernel::default_variant(gpu, &s, pass);
                tuned(gpu, &format!("conv2d_backward_weight {s:?}"), v, |v| {
                    let kernel = ConvKernel::with_variant(gpu, &s, pass, v);
                    backward_weight(gpu, x, dy, dw, s, kernel, weight_grad_splits(s, kernel, gpu.class))
                })?
            }
        }))
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match *self {
            Self::Forward { x, w, y, s } => {
                let out = cpu::forward(v.get(x)?, v.get(w)?, s);
                v.set(y, out);
            }
            Self::BackwardInput { dy, w, dx, s } => {
                // dX does not depend on X: pass zeros for it.
                let zeros = vec![0.0; s.input_len()];
                let (d, _) = cpu::backward(&zeros, v.get(w)?, v.get(dy)?, s);
                v.set(dx, d);
            }
            Self::BackwardWeight { x, dy, dw, s } => {
                let zeros = vec![0.0; s.weight_len()];
                let (_, d) = cpu::backward(v.get(x)?, &zeros, v.get(dy)?, s);
                v.set(dw, d);
            }
        }
        Ok(())
    }

    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self>,
    {
        let Self::Forward { x, w, s, .. } = *self else { return no_backward_rule(self) };
        tape.propagate(x, |dx| Self::BackwardInput { dy: gy, w, dx, s });
        tape.propagate(w, |dw| Self::BackwardWeight { x, dy: gy, dw, s });
        Ok(())
    }
}
