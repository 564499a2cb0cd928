//! Row-wise ops over [rows, cols]: L2-normalise, softmax(scale*x) and log-softmax(scale*x)
//! (scale = 1/temperature), each with its backward. One workgroup per row, tree reductions.
pub mod cpu;
mod graph;

pub use graph::{RowKind, RowsOps};

use crate::error::{shape_err, Result};
use crate::gpu::{linear_grid, words, Dispatch, Gpu, Tensor};
use crate::ops::{check_len, compose, to_u32, KernelSource};

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

const KERNELS: [(&str, &str); 6] = [
    ("l2_normalize_forward", include_str!("../../../shaders/rows/l2_normalize_forward.wgsl")),
    ("l2_normalize_backward", include_str!("../../../shaders/rows/l2_normalize_backward.wgsl")),
    ("softmax_forward", with_logsumexp!("../../../shaders/rows/softmax_forward.wgsl")),
    ("softmax_backward", include_str!("../../../shaders/rows/softmax_backward.wgsl")),
    ("log_softmax_forward", with_logsumexp!("../../../shaders/rows/log_softmax_forward.wgsl")),
    ("log_softmax_backward", include_str!("../../../shaders/rows/log_softmax_backward.wgsl")),
];

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

#[allow(clippy::too_many_arguments)]
/// `family` prefixes the kernel's identity (`rows/softmax_forward`, `loss/...`).
pub(crate) fn row_dispatch(
    gpu: &Gpu,
    family: &str,
    name: &'static str,
    body: &str,
    tensors: &[&Tensor],
    rows: usize,
    cols: usize,
    scale: f32,
    eps: f32,
) -> Result<Dispatch> {
    if rows == 0 || cols == 0 {
        return shape_err(name, format!("empty [{rows}, {cols}]"));
    }
    let key = format!("{family}/{name}");
    let pipeline = gpu.pipeline(&key, || row_source(body), "main")?;
    let params = words(&RowParams { rows: to_u32(name, rows)?, cols: to_u32(name, cols)?, scale, eps });
    let grid = linear_grid(gpu, name, rows as u64)?;
    gpu.dispatch(name, &pipeline, &params, tensors, grid)
}

fn run(gpu: &Gpu, name: &'static str, tensors: &[&Tensor], rows: usize, cols: usize, scale: f32) -> Result<Dispatch> {
    for (i, t) in tensors.iter().enumerate() {
        check_len(name, &format!("operand {i}"), t, rows * cols)?;
    }
    let body = KERNELS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).expect("known kernel");
    row_dispatch(gpu, "rows", name, body, tensors, rows, cols, scale, L2_EPS)
}

pub fn l2_normalize_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, rows: usize, cols: usize) -> Result<Dispatch> {
    run(gpu, "l2_normalize_forward", &[x, y], rows, cols, 1.0)
}
pub fn l2_normalize_backward(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    run(gpu, "l2_normalize_backward", &[x, dy, dx], rows, cols, 1.0)
}
pub fn softmax_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, rows: usize, cols: usize, scale: f32) -> Result<Dispatch> {
    run(gpu, "softmax_forward", &[x, y], rows, cols, scale)
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
    run(gpu, "softmax_backward", &[y, dy, dx], rows, cols, scale)
}
pub fn log_softmax_forward(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<Dispatch> {
    run(gpu, "log_softmax_forward", &[x, y], rows, cols, scale)
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
    run(gpu, "log_softmax_backward", &[y, dy, dx], rows, cols, scale)
}

/// A row kernel's module: the reductions, the row parameters and entry point, the kernel.
pub(crate) fn row_source(body: &str) -> String {
    compose(&[REDUCE, COMMON, body], &[])
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    KERNELS.iter().map(|(n, b)| KernelSource { name: format!("rows/{n}"), source: row_source(b) }).collect()
}
