//! Reductions over the middle axis of a tensor viewed as [outer, reduce, inner]: sum, mean,
//! max and L2 norm. Whole-tensor reductions are outer = inner = 1. Tree reductions in
//! workgroup memory; a long axis is cut into chunks reduced by further passes (no atomics).
pub mod cpu;
mod graph;

pub use graph::ReduceOps;

use crate::error::{shape_err, Result};
use crate::gpu::{linear_grid, words, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::{check_len, sources, to_u32, KernelSource};

/// The family's kernels: chunked passes, one pass over a short axis, and the gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReduceKernel {
    Axis,
    AxisShort,
    AxisBackward,
}

impl Kernel for ReduceKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some((
            "Params",
            match self {
                Self::Axis => std::mem::size_of::<AxisParams>(),
                Self::AxisShort => std::mem::size_of::<ShortParams>(),
                Self::AxisBackward => std::mem::size_of::<BackwardParams>(),
            },
        ))
    }

    fn all() -> Vec<Self> {
        vec![Self::Axis, Self::AxisShort, Self::AxisBackward]
    }

    fn name(&self) -> String {
        match self {
            Self::Axis => "reduce_axis",
            Self::AxisShort => "reduce_axis_short",
            Self::AxisBackward => "reduce_axis_backward",
        }
        .into()
    }

    fn source(&self) -> String {
        match self {
            Self::Axis => include_str!("../../../shaders/reduce/reduce_axis.wgsl"),
            Self::AxisShort => include_str!("../../../shaders/reduce/reduce_axis_short.wgsl"),
            Self::AxisBackward => include_str!("../../../shaders/reduce/reduce_axis_backward.wgsl"),
        }
        .into()
    }
}

/// Elements of the reduced axis one workgroup handles per pass.
const CHUNK: usize = 4096;

/// Axes up to this long, with at least this many outputs, take the one-invocation-per-output
/// kernel (split-K slabs, per-channel pools); others the workgroup tree.
const SHORT_AXIS: usize = 256;
const MANY_OUTPUTS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    /// sqrt(sum of squares)
    Norm,
}

/// Y[o, i] = op over r of X[o, r, i]. Returns the passes in order; temporaries are owned by them.
pub fn reduce_axis(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    outer: usize,
    reduce: usize,
    inner: usize,
    op: ReduceOp,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "reduce";
    if outer == 0 || reduce == 0 || inner == 0 {
        return shape_err(OP, format!("empty reduction [{outer}, {reduce}, {inner}]"));
    }
    check_len(OP, "input", x, outer * reduce * inner)?;
    check_len(OP, "output", y, outer * inner)?;
    if reduce <= SHORT_AXIS && outer * inner >= MANY_OUTPUTS {
        return Ok(vec![reduce_short(gpu, x, y, [outer, reduce, inner], op)?]);
    }
    let mut passes: Vec<Dispatch> = Vec::new();
    let mut current_len = reduce;
    let mut first = true;
    let mut owned_input: Option<Tensor> = None;
    loop {
        let n_chunks = current_len.div_ceil(CHUNK);
        let last = n_chunks == 1;
        let (finish, scale) = match (last, op) {
            (true, ReduceOp::Mean) => (1, 1.0 / reduce as f32),
            (true, ReduceOp::Norm) => (2, 1.0),
            _ => (0, 1.0),
        };
        let params = words(&AxisParams {
            outer: to_u32(OP, outer)?,
            reduce: to_u32(OP, current_len)?,
            inner: to_u32(OP, inner)?,
            chunk: CHUNK as u32,
            n_chunks: n_chunks as u32,
            op_max: (op == ReduceOp::Max) as u32,
            square: (first && op == ReduceOp::Norm) as u32,
            finish,
            scale,
            _pad: [0; 3],
        });
        let grid = linear_grid(gpu, "reduce_axis", (outer * n_chunks * inner) as u64)?;
        let input = owned_input.as_ref().unwrap_or(x);
        if last {
            let mut d = ReduceKernel::Axis.dispatch(gpu, &params, &[input, y], grid)?;
            if let Some(t) = owned_input.take() {
                d = d.keep(t);
            }
            passes.push(d);
            return Ok(passes);
        }
        let partial = gpu.tensor("reduce partials", &[outer, n_chunks, inner])?;
        let mut d = ReduceKernel::Axis.dispatch(gpu, &params, &[input, &partial], grid)?;
        if let Some(t) = owned_input.take() {
            d = d.keep(t);
        }
        passes.push(d);
        owned_input = Some(partial);
        current_len = n_chunks;
        first = false;
    }
}

/// A short axis over many outputs: one thread per output, one pass.
fn reduce_short(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    [outer, reduce, inner]: [usize; 3],
    op: ReduceOp,
) -> Result<Dispatch> {
    const OP: &str = "reduce";
    let (finish, scale) = match op {
        ReduceOp::Mean => (1, 1.0 / reduce as f32),
        ReduceOp::Norm => (2, 1.0),
        _ => (0, 1.0),
    };
    let params = words(&ShortParams {
        outer: to_u32(OP, outer)?,
        reduce: to_u32(OP, reduce)?,
        inner: to_u32(OP, inner)?,
        op_max: (op == ReduceOp::Max) as u32,
        square: (op == ReduceOp::Norm) as u32,
        finish,
        scale,
        _pad: 0,
    });
    let grid = linear_grid(gpu, "reduce_axis_short", (outer * inner).div_ceil(256) as u64)?;
    ReduceKernel::AxisShort.dispatch(gpu, &params, &[x, y], grid)
}

/// dX of `reduce_axis` given its input X, its output Y and dY.
#[allow(clippy::too_many_arguments)]
pub fn reduce_axis_backward(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    outer: usize,
    reduce: usize,
    inner: usize,
    op: ReduceOp,
) -> Result<Dispatch> {
    const OP: &str = "reduce_backward";
    check_len(OP, "input", x, outer * reduce * inner)?;
    check_len(OP, "grad input", dx, outer * reduce * inner)?;
    check_len(OP, "output", y, outer * inner)?;
    check_len(OP, "grad output", dy, outer * inner)?;
    let code = match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
        ReduceOp::Max => 2,
        ReduceOp::Norm => 3,
    };
    let params = words(&BackwardParams {
        outer: to_u32(OP, outer)?,
        reduce: to_u32(OP, reduce)?,
        inner: to_u32(OP, inner)?,
        op: code,
    });
    let grid = linear_grid(gpu, OP, (outer * reduce * inner).div_ceil(256) as u64)?;
    ReduceKernel::AxisBackward.dispatch(gpu, &params, &[x, y, dy, dx], grid)
}

/// `Params` of shaders/reduce/reduce_axis.wgsl (finish: 0 none, 1 scale, 2 sqrt).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AxisParams {
    outer: u32,
    reduce: u32,
    inner: u32,
    chunk: u32,
    n_chunks: u32,
    op_max: u32,
    square: u32,
    finish: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// `Params` of shaders/reduce/reduce_axis_short.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ShortParams {
    outer: u32,
    reduce: u32,
    inner: u32,
    op_max: u32,
    square: u32,
    finish: u32,
    scale: f32,
    _pad: u32,
}

/// `Params` of shaders/reduce/reduce_axis_backward.wgsl (op: 0 sum, 1 mean, 2 max, 3 norm).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct BackwardParams {
    outer: u32,
    reduce: u32,
    inner: u32,
    op: u32,
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<ReduceKernel>()
}
