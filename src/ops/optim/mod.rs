//! The optimizer's update kernels (`shaders/optim`): SGD with momentum inside apex LARC (or
//! plain), and Adam, each one pass over a parameter after its norms; the frozen prototypes
//! are skipped by a flag in the step state. With loss scaling the updates unscale the
//! gradients (the `unscale` specialisations) and a check pass flags a step whose loss,
//! gradients or gradient norms are not finite, which every update then skips. The optimizer
//! graph and its config are `optim`.
pub mod cpu;
mod graph;

pub use graph::OptimOps;

use crate::error::Result;
use crate::gpu::{linear_grid, words, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::reduce::{self, ReduceOp};
use crate::ops::{check_len, compose, sources, to_u32, KernelSource};

const COMMON: &str = include_str!("../../../shaders/optim/common.wgsl");

/// The family's kernels: the updates, plain or unscaling the gradients by the step state's
/// 1/S (loss scaling), and the overflow check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OptimKernel {
    SgdStep { unscale: bool },
    AdamStep { unscale: bool },
    CheckFinite,
}

impl Kernel for OptimKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some((
            "Params",
            match self {
                Self::SgdStep { .. } => std::mem::size_of::<SgdParams>(),
                Self::AdamStep { .. } => std::mem::size_of::<AdamParams>(),
                Self::CheckFinite => std::mem::size_of::<CheckParams>(),
            },
        ))
    }

    fn all() -> Vec<Self> {
        let updates =
            [false, true].into_iter().flat_map(|u| [Self::SgdStep { unscale: u }, Self::AdamStep { unscale: u }]);
        updates.chain([Self::CheckFinite]).collect()
    }

    fn name(&self) -> String {
        let (name, unscale) = match *self {
            Self::SgdStep { unscale } => ("optim/sgd_step", unscale),
            Self::AdamStep { unscale } => ("optim/adam_step", unscale),
            Self::CheckFinite => ("optim/check_finite", false),
        };
        if unscale {
            format!("{name}/unscale")
        } else {
            name.into()
        }
    }

    fn source(&self) -> String {
        let (body, unscale) = match *self {
            Self::SgdStep { unscale } => (include_str!("../../../shaders/optim/sgd_step.wgsl"), unscale),
            Self::AdamStep { unscale } => (include_str!("../../../shaders/optim/adam_step.wgsl"), unscale),
            Self::CheckFinite => (include_str!("../../../shaders/optim/check_finite.wgsl"), false),
        };
        // Without loss scaling the placeholder is empty: the kernels as they were before it.
        let by = if unscale { format!(" * OPT[{INV_SCALE}]") } else { String::new() };
        compose(&[COMMON, body], &[("UNSCALE", by)])
    }
}

/// Length of the per-step optimizer state tensor: [lr, prototypes enabled (1) or frozen (0),
/// c1, c2, c1_prototypes, c2_prototypes, 1/S], Adam's bias corrections c = 1 - beta^t (t
/// counts steps taken from 1; the prototypes' t from their unfreezing), computed here in f64,
/// and the inverse loss scale (1 without loss scaling; only the `unscale` kernels read it).
pub const STATE_LEN: usize = 7;

/// Where the step state holds 1/S.
const INV_SCALE: usize = 6;

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
    /// 1/S, the loss scale's inverse, by which the `unscale` kernels multiply every gradient
    /// (1 without loss scaling). Rounded to f32 from f64, as GradScaler's `inv_scale`.
    pub inv_scale: f64,
}

impl StepState {
    /// The tensor: [lr, prototypes on (1) or frozen (0), c1, c2, c1 prototypes, c2 prototypes,
    /// 1/S].
    pub fn to_values(&self) -> [f32; STATE_LEN] {
        let (c1, c2) = self.corrections;
        let (p1, p2) = self.prototype_corrections;
        let on = self.prototypes_on as u32 as f32;
        [self.lr as f32, on, c1 as f32, c2 as f32, p1 as f32, p2 as f32, self.inv_scale as f32]
    }

    /// Read back from the tensor's values (the CPU evaluation).
    pub fn from_values(v: &[f64]) -> StepState {
        let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
        StepState {
            lr: at(0),
            prototypes_on: at(1) != 0.0,
            corrections: (at(2), at(3)),
            prototype_corrections: (at(4), at(5)),
            inv_scale: at(INV_SCALE),
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
    /// Loss scaling: the gradient is unscaled by OPT's 1/S, and the step's `loss` tensor is
    /// its found_inf (`check_finite`).
    pub unscale: bool,
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
    /// Loss scaling: the gradient and its norm are unscaled by OPT's 1/S, the norms were
    /// computed by `sgd_norms` before any update, and the step's `loss` tensor is its
    /// found_inf (`check_finite`).
    pub unscale: bool,
}

op_tensors! {
    /// An SGD(+LARS) step's tensors: the parameter and its momentum (updated in place), the
    /// gradient, the norms' scratch, the step state (`STATE_LEN`) and the loss (no update
    /// unless finite; with loss scaling the step's found_inf).
    SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss }
}

op_tensors! {
    /// An Adam step's tensors: the parameter and its two moments (updated in place), the
    /// gradient, the step state (`STATE_LEN`) and the loss (with loss scaling its found_inf).
    AdamTensors { param, grad, m1, m2, state, loss }
}

/// One SGD(+LARS) step on `param` from `grad`: LARS's norms (unless `h.unscale`: then
/// `sgd_norms` ran before every update), then the update.
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
    if h.lars && !h.unscale {
        d.extend(sgd_norms(gpu, param, grad, pnorm, gnorm)?);
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
    let kernel = OptimKernel::SgdStep { unscale: h.unscale };
    d.push(kernel.dispatch(gpu, &params, &[grad, pnorm, gnorm, opt, loss, param, momentum], grid)?);
    Ok(d)
}

/// LARS's norms of a parameter and of its gradient, each into a one-element tensor.
pub fn sgd_norms(gpu: &Gpu, param: &Tensor, grad: &Tensor, pnorm: &Tensor, gnorm: &Tensor) -> Result<Vec<Dispatch>> {
    let n = param.len();
    check_len("sgd_norms", "grad", grad, n)?;
    let mut d = reduce::reduce_axis(gpu, param, pnorm, 1, n, 1, ReduceOp::Norm)?;
    d.extend(reduce::reduce_axis(gpu, grad, gnorm, 1, n, 1, ReduceOp::Norm)?);
    Ok(d)
}

/// Loss scaling's check: `found_inf` ([1], 0 at the step's start) becomes +inf when any
/// element of `x` is NaN or infinite, and is left as it is otherwise.
pub fn check_finite(gpu: &Gpu, x: &Tensor, found_inf: &Tensor) -> Result<Dispatch> {
    const OP: &str = "check_finite";
    check_len(OP, "found_inf", found_inf, 1)?;
    check_len(OP, "checked tensor", x, x.len())?;
    let params = words(&CheckParams { len: to_u32(OP, x.len())?, _pad: [0; 3] });
    let grid = linear_grid(gpu, OP, x.len().div_ceil(256) as u64)?;
    OptimKernel::CheckFinite.dispatch(gpu, &params, &[x, found_inf], grid)
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
    OptimKernel::AdamStep { unscale: h.unscale }.dispatch(gpu, &params, &[grad, opt, loss, param, m1, m2], grid)
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

/// `Params` of shaders/optim/check_finite.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct CheckParams {
    len: u32,
    _pad: [u32; 3],
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<OptimKernel>()
}
