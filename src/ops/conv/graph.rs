//! Convolution in the graph: forward and the two backward passes, each on the chooser's GEMM
//! variant or the tuner's fastest (`matmul::tuned`).
use super::{backward_input, backward_weight, cpu, forward, weight_grad_splits, Conv2dShape, ConvKernel, ConvPass};
use crate::error::Result;
use crate::gpu::{runs, Dispatch, Gpu, Step};
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
                tuned_pass(gpu, s, ConvPass::Forward, |k| forward(gpu, x, w, y, s, k))?
            }
            Self::BackwardInput { dy, w, dx, s } => {
                let (dy, w, dx) = (b.tensor(dy)?, b.tensor(w)?, b.tensor(dx)?);
                tuned_pass(gpu, s, ConvPass::BackwardInput, |k| backward_input(gpu, dy, w, dx, s, k))?
            }
            Self::BackwardWeight { x, dy, dw, s } => {
                let (x, dy, dw) = (b.tensor(x)?, b.tensor(dy)?, b.tensor(dw)?);
                tuned_pass(gpu, s, ConvPass::BackwardWeight, |k| {
                    backward_weight(gpu, x, dy, dw, s, k, weight_grad_splits(s, k, gpu.class))
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

/// One pass on the chooser's GEMM variant, or the tuner's fastest (the kernel each variant
/// gives this pass: `ConvKernel::with_variant`).
fn tuned_pass(
    gpu: &Gpu,
    s: Conv2dShape,
    pass: ConvPass,
    mut run: impl FnMut(ConvKernel) -> Result<Vec<Dispatch>>,
) -> Result<Vec<Dispatch>> {
    let op = match pass {
        ConvPass::Forward => "conv2d_forward",
        ConvPass::BackwardInput => "conv2d_backward_input",
        ConvPass::BackwardWeight => "conv2d_backward_weight",
    };
    let default = ConvKernel::default_variant(gpu, &s, pass);
    tuned(gpu, &format!("{op} {s:?}"), default, |v| run(ConvKernel::with_variant(gpu, &s, pass, v)))
}
