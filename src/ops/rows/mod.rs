//! Row-wise ops over [rows, cols]: L2-normalise, softmax(scale*x) and log-softmax(scale*x)
//! (scale = 1/temperature), each with its backward. One workgroup per row, tree reductions.
pub mod cpu;
mod graph;

pub use graph::{RowKind, RowsOps};

use crate::error::{shape_err, Result};
use crate::gpu::{linear_grid, words, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::{check_len, compose, sources, to_u32, KernelSource};

const REDUCE: &str = include_str!("../../../shaders/common/workgroup_reduce.wgsl");
const COMMON: &str = include_str!("../../../shaders/rows/common.wgsl");
/// The log-sum-exp helpers before each kernel that calls them (they read the kernel's `X`,
/// which not every row kernel has; WGSL declarations may come in any order).
macro_rules! with_logsumexp {
    ($path:literal) => {
        concat!(include_str!("../../../shaders/rows/logsumexp.wgsl"), "\n", include_str!($path))
    };
}
pub(crate) use with_logsumexp;

/// The family's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowsKernel {
    L2NormalizeForward,
    L2NormalizeBackward,
    SoftmaxForward,
    SoftmaxBackward,
    LogSoftmaxForward,
    LogSoftmaxBackward,
}

impl RowsKernel {
    fn name_and_body(self) -> (&'static str, &'static str) {
        match self {
            Self::L2NormalizeForward => {
                ("l2_normalize_forward", include_str!("../../../shaders/rows/l2_normalize_forward.wgsl"))
            }
            Self::L2NormalizeBackward => {
                ("l2_normalize_backward", include_str!("../../../shaders/rows/l2_normalize_backward.wgsl"))
            }
            Self::SoftmaxForward => ("softmax_forward", with_logsumexp!("../../../shaders/rows/softmax_forward.wgsl")),
            Self::SoftmaxBackward => ("softmax_backward", include_str!("../../../shaders/rows/softmax_backward.wgsl")),
            Self::LogSoftmaxForward => {
                ("log_softmax_forward", with_logsumexp!("../../../shaders/rows/log_softmax_forward.wgsl"))
            }
            Self::LogSoftmaxBackward => {
                ("log_softmax_backward", include_str!("../../../shaders/rows/log_softmax_backward.wgsl"))
            }
        }
    }
}

impl Kernel for RowsKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some(("Params", std::mem::size_of::<RowParams>()))
    }

    fn all() -> Vec<Self> {
        vec![
            Self::L2NormalizeForward,
            Self::L2NormalizeBackward,
            Self::SoftmaxForward,
            Self::SoftmaxBackward,
            Self::LogSoftmaxForward,
            Self::LogSoftmaxBackward,
        ]
    }

    fn name(&self) -> String {
        format!("rows/{}", self.name_and_body().0)
    }

    fn source(&self) -> String {
        row_source(self.name_and_body().1)
    }
}

/// `Params` of shaders/rows/common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RowParams {
    rows: u32,
    cols: u32,
    scale: f32,
    eps: f32,
}

/// torch.nn.functional.normalize's default eps.
pub const L2_EPS: f32 = 1e-12;

/// One workgroup per row of a row kernel (`op` names it in errors).
#[allow(clippy::too_many_arguments)]
pub(crate) fn row_dispatch(
    gpu: &Gpu,
    kernel: impl Kernel,
    op: &'static str,
    tensors: &[&Tensor],
    rows: usize,
    cols: usize,
    scale: f32,
    eps: f32,
) -> Result<Dispatch> {
    if rows == 0 || cols == 0 {
        return shape_err(op, format!("empty [{rows}, {cols}]"));
    }
    let params = words(&RowParams { rows: to_u32(op, rows)?, cols: to_u32(op, cols)?, scale, eps });
    let grid = linear_grid(gpu, op, rows as u64)?;
    kernel.dispatch(gpu, &params, tensors, grid)
}

fn run(gpu: &Gpu, kernel: RowsKernel, tensors: &[&Tensor], rows: usize, cols: usize, scale: f32) -> Result<Dispatch> {
    let op = kernel.name_and_body().0;
    for (i, t) in tensors.iter().enumerate() {
        check_len(op, &format!("operand {i}"), t, rows * cols)?;
    }
    row_dispatch(gpu, kernel, op, tensors, rows, cols, scale, L2_EPS)
}

pub fn l2_normalize_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, rows: usize, cols: usize) -> Result<Dispatch> {
    run(gpu, RowsKernel::L2NormalizeForward, &[x, y], rows, cols, 1.0)
}
pub fn l2_normalize_backward(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    run(gpu, RowsKernel::L2NormalizeBackward, &[x, dy, dx], rows, cols, 1.0)
}
pub fn softmax_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, rows: usize, cols: usize, scale: f32) -> Result<Dispatch> {
    run(gpu, RowsKernel::SoftmaxForward, &[x, y], rows, cols, scale)
}
/// From the forward *output* Y.
pub fn softmax_backward(
    gpu: &Gpu,
    y: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<Dispatch> {
    run(gpu, RowsKernel::SoftmaxBackward, &[y, dy, dx], rows, cols, scale)
}
pub fn log_softmax_forward(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<Dispatch> {
    run(gpu, RowsKernel::LogSoftmaxForward, &[x, y], rows, cols, scale)
}
/// From the forward *output* Y.
pub fn log_softmax_backward(
    gpu: &Gpu,
    y: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<Dispatch> {
    run(gpu, RowsKernel::LogSoftmaxBackward, &[y, dy, dx], rows, cols, scale)
}

/// A row kernel's module: the reductions, the row parameters and entry point, the kernel.
pub(crate) fn row_source(body: &str) -> String {
    compose(&[REDUCE, COMMON, body], &[])
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<RowsKernel>()
}
