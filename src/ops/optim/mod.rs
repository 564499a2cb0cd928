//! The optimizer's update kernels (`shaders/optim`): SGD with momentum inside apex LARC (or
//! plain), and Adam, each one pass over a parameter after its norms; the frozen prototypes
//! are skipped by a flag in the step state. The optimizer graph and its config are `optim`.
pub mod cpu;
mod graph;

pub use graph::OptimOps;

use crate::error::Result;
use crate::gpu::{linear_grid, words, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::reduce::{self, ReduceOp};
use crate::ops::{check_len, compose, sources, to_u32, KernelSource};

const COMMON: &str = include_str!("../../../shaders/optim/common.wgsl");

/// The family's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OptimKernel {
    SgdStep,
    AdamStep,
}

impl Kernel for OptimKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some((
            "Params",
            match self {
                Self::SgdStep => std::mem::size_of::<SgdParams>(),
                Self::AdamStep => std::mem::size_of::<AdamParams>(),
            },
        ))
    }

    fn all() -> Vec<Self> {
        vec![Self::SgdStep, Self::AdamStep]
    }

    fn name(&self) -> String {
        match self {
            Self::SgdStep => "optim/sgd_step",
            Self::AdamStep => "optim/adam_step",
        }
        .into()
    }

    fn source(&self) -> String {
        let body = match self {
            Self::SgdStep => include_str!("../../../shaders/optim/sgd_step.wgsl"),
            Self::AdamStep => include_str!("../../../shaders/optim/adam_step.wgsl"),
        };
        compose(&[COMMON, body], &[])
    }
}

/// Length of the per-step optimizer state tensor: [lr, prototypes enabled (1) or frozen (0),
/// c1, c2, c1_prototypes, c2_prototypes], Adam's bias corrections c = 1 - beta^t (t counts
/// steps from 1; the prototypes' t from their unfreezing), computed here in f64.
pub const STATE_LEN: usize = 6;

/// The per-step optimizer state: one small tensor written every step and read by the update
/// kernels, in `to_values`' order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepState {
    pub lr: f64,
    /// Whether the prototypes move this step (frozen for the first iterations).
    pub prototypes_on: bool,
    /// Adam's bias corrections (1 - b1^t, 1 - b2^t) of the other parameters...
    pub corrections: (f64, f64),
    /// ...and of the prototypes, whose t counts from their unfreezing.
    pub prototype_corrections: (f64, f64),
}

impl StepState {
    /// The tensor: [lr, prototypes on (1) or frozen (0), c1, c2, c1 prototypes, c2 prototypes].
    pub fn to_values(&self) -> [f32; STATE_LEN] {
        let (c1, c2) = self.corrections;
        let (p1, p2) = self.prototype_corrections;
        [self.lr as f32, self.prototypes_on as u32 as f32, c1 as f32, c2 as f32, p1 as f32, p2 as f32]
    }

    /// Read back from the tensor's values (the CPU evaluation).
    pub fn from_values(v: &[f64]) -> StepState {
        let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
        StepState {
            lr: at(0),
            prototypes_on: at(1) != 0.0,
            corrections: (at(2), at(3)),
            prototype_corrections: (at(4), at(5)),
        }
    }
}

/// Adam's per-parameter settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Skipped (no update, moments kept) while OPT[1] == 0: the frozen prototypes.
    pub gated: bool,
}

/// Per-parameter optimizer settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdHyper {
    /// LARS (apex LARC) around SGD; false = plain SGD.
    pub lars: bool,
    pub weight_decay: f32,
    pub momentum: f32,
    pub trust: f32,
    pub eps: f32,
    /// Skipped (no update, no momentum) while OPT[1] == 0: the frozen prototypes.
    pub gated: bool,
}

op_tensors! {
    /// An SGD(+LARS) step's tensors: the parameter and its momentum (updated in place), the
    /// gradient, the norms' scratch, the step state (`STATE_LEN`) and the loss (no update
    /// unless finite).
    SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }
}

op_tensors! {
    /// An Adam step's tensors: the parameter and its two moments (updated in place), the
    /// gradient, the step state (`STATE_LEN`) and the loss.
    AdamTensors { param, grad, m1, m2, state, loss }
}

/// One SGD(+LARS) step on `param` from `grad`.
pub fn sgd_step(gpu: &Gpu, t: &SgdTensors<&Tensor>, h: SgdHyper) -> Result<Vec<Dispatch>> {
    const OP: &str = "sgd_step";
    let SgdTensors { param, grad, momentum, pnorm, gnorm, state: opt, loss } = *t;
    let n = param.len();
    check_len(OP, "grad", grad, n)?;
    check_len(OP, "momentum", momentum, n)?;
    check_len(OP, "param norm", pnorm, 1)?;
    check_len(OP, "grad norm", gnorm, 1)?;
    check_len(OP, "optimizer state", opt, STATE_LEN)?;
    check_len(OP, "loss", loss, 1)?;
    let mut d = Vec::new();
    if h.lars {
        d.extend(reduce::reduce_axis(gpu, param, pnorm, 1, n, 1, ReduceOp::Norm)?);
        d.extend(reduce::reduce_axis(gpu, grad, gnorm, 1, n, 1, ReduceOp::Norm)?);
    }
    let params = words(&SgdParams {
        len: to_u32(OP, n)?,
        lars: h.lars as u32,
        gated: h.gated as u32,
        _pad: 0,
        weight_decay: h.weight_decay,
        momentum: h.momentum,
        trust: h.trust,
        eps: h.eps,
    });
    let grid = linear_grid(gpu, OP, n.div_ceil(256) as u64)?;
    d.push(OptimKernel::SgdStep.dispatch(gpu, &params, &[grad, pnorm, gnorm, opt, loss, param, momentum], grid)?);
    Ok(d)
}

/// One Adam step on `param` from `grad` with first / second moments `m1` / `m2`.
pub fn adam_step(gpu: &Gpu, t: &AdamTensors<&Tensor>, h: AdamHyper) -> Result<Dispatch> {
    const OP: &str = "adam_step";
    let AdamTensors { param, grad, m1, m2, state: opt, loss } = *t;
    let n = param.len();
    check_len(OP, "grad", grad, n)?;
    check_len(OP, "first moment", m1, n)?;
    check_len(OP, "second moment", m2, n)?;
    check_len(OP, "optimizer state", opt, STATE_LEN)?;
    check_len(OP, "loss", loss, 1)?;
    let params = words(&AdamParams {
        len: to_u32(OP, n)?,
        gated: h.gated as u32,
        _pad: [0; 2],
        weight_decay: h.weight_decay,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
    });
    let grid = linear_grid(gpu, OP, n.div_ceil(256) as u64)?;
    OptimKernel::AdamStep.dispatch(gpu, &params, &[grad, opt, loss, param, m1, m2], grid)
}

/// `Params` of shaders/optim/sgd_step.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct SgdParams {
    len: u32,
    lars: u32,
    gated: u32,
    _pad: u32,
    weight_decay: f32,
    momentum: f32,
    trust: f32,
    eps: f32,
}

/// `Params` of shaders/optim/adam_step.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdamParams {
    len: u32,
    gated: u32,
    _pad: [u32; 2],
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<OptimKernel>()
}
