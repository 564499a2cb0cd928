//! Pooling: max-pool (any window / stride / padding; ResNet's stem uses 3x3/2 pad 1) with an
//! arg-max so its backward is a gather, and global average pool (a mean reduction over H*W).
pub mod cpu;
mod graph;

pub use graph::PoolOps;

use crate::error::{shape_err, Result};
use crate::gpu::{linear_grid, words, DType, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::reduce::{self, ReduceOp};
use crate::ops::{
    activation_type, check_len, check_typed, compose_typed, sources, to_u32, type_suffix, wgsl_scalar, KernelSource,
    ACTIVATION_TYPES,
};

const COMMON: &str = include_str!("../../../shaders/pool/common.wgsl");

/// The family's kernels, over f32 or f16 activations (`act`; the arg-max is u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKernel {
    MaxForward { act: DType },
    MaxBackward { act: DType },
}

impl Kernel for PoolKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some(("Params", std::mem::size_of::<PoolParams>()))
    }

    fn all() -> Vec<Self> {
        ACTIVATION_TYPES.iter().flat_map(|&act| [Self::MaxForward { act }, Self::MaxBackward { act }]).collect()
    }

    fn name(&self) -> String {
        match *self {
            Self::MaxForward { act } => format!("pool/max_forward{}", type_suffix(act)),
            Self::MaxBackward { act } => format!("pool/max_backward{}", type_suffix(act)),
        }
    }

    fn source(&self) -> String {
        let (body, act) = match *self {
            Self::MaxForward { act } => (include_str!("../../../shaders/pool/max_forward.wgsl"), act),
            Self::MaxBackward { act } => (include_str!("../../../shaders/pool/max_backward.wgsl"), act),
        };
        compose_typed(act, &[COMMON, body], &[("ACT", wgsl_scalar(act).into())])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// batch * channels
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub pad: (usize, usize),
}

impl PoolShape {
    pub fn square(planes: usize, hw: usize, k: usize, stride: usize, pad: usize) -> Self {
        PoolShape { planes, h: hw, w: hw, kh: k, kw: k, stride: (stride, stride), pad: (pad, pad) }
    }
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad.0 - self.kh) / self.stride.0 + 1,
            (self.w + 2 * self.pad.1 - self.kw) / self.stride.1 + 1,
        )
    }
    pub fn output_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.planes * oh * ow
    }
    fn validate(&self) -> Result<()> {
        if self.planes == 0
            || self.h == 0
            || self.w == 0
            || self.kh == 0
            || self.kw == 0
            || self.stride.0 == 0
            || self.stride.1 == 0
        {
            return shape_err("max_pool", format!("zero dimension in {self:?}"));
        }
        // PyTorch's rule: padding at most half the window, so every window sees an input.
        if 2 * self.pad.0 > self.kh
            || 2 * self.pad.1 > self.kw
            || self.h + 2 * self.pad.0 < self.kh
            || self.w + 2 * self.pad.1 < self.kw
        {
            return shape_err(
                "max_pool",
                format!("padding must be at most half the window and the window must fit: {self:?}"),
            );
        }
        Ok(())
    }
    fn params(&self) -> Result<Vec<u32>> {
        let u = |v: usize| to_u32("pool", v);
        let (oh, ow) = self.out_hw();
        Ok(words(&PoolParams {
            planes: u(self.planes)?,
            h: u(self.h)?,
            w: u(self.w)?,
            oh: u(oh)?,
            ow: u(ow)?,
            kh: u(self.kh)?,
            kw: u(self.kw)?,
            sh: u(self.stride.0)?,
            sw: u(self.stride.1)?,
            ph: u(self.pad.0)?,
            pw: u(self.pad.1)?,
            _pad: 0,
        }))
    }
}

/// `Params` of shaders/pool/common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PoolParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    _pad: u32,
}

/// Y and ARGMAX (u32 bits stored in an f32-sized tensor, index within the input plane).
pub fn max_pool_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, argmax: &Tensor, s: PoolShape) -> Result<Dispatch> {
    s.validate()?;
    let act = activation_type("max_pool", x)?;
    check_typed("max_pool", "input", x, s.planes * s.h * s.w, act)?;
    check_typed("max_pool", "output", y, s.output_len(), act)?;
    check_len("max_pool", "argmax", argmax, s.output_len())?;
    let grid = linear_grid(gpu, "max_pool", s.output_len().div_ceil(256) as u64)?;
    PoolKernel::MaxForward { act }.dispatch(gpu, &s.params()?, &[x, y, argmax], grid)
}

pub fn max_pool_backward(gpu: &Gpu, dy: &Tensor, argmax: &Tensor, dx: &Tensor, s: PoolShape) -> Result<Dispatch> {
    s.validate()?;
    let act = activation_type("max_pool_backward", dy)?;
    check_typed("max_pool_backward", "grad output", dy, s.output_len(), act)?;
    check_len("max_pool_backward", "argmax", argmax, s.output_len())?;
    check_typed("max_pool_backward", "grad input", dx, s.planes * s.h * s.w, act)?;
    let grid = linear_grid(gpu, "max_pool_backward", (s.planes * s.h * s.w).div_ceil(256) as u64)?;
    PoolKernel::MaxBackward { act }.dispatch(gpu, &s.params()?, &[dy, argmax, dx], grid)
}

/// Y[plane] = mean of X[plane, :, :].
pub fn global_avg_pool_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, planes: usize, hw: usize) -> Result<Vec<Dispatch>> {
    reduce::reduce_axis(gpu, x, y, planes, hw, 1, ReduceOp::Mean)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<PoolKernel>()
}
