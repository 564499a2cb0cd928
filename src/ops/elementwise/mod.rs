//! Elementwise ops: ReLU (forward, backward), add (C = alpha*A + beta*B: the residual add and
//! gradient accumulation) and scale (Y = alpha*X). Backward of add and scale are add and scale.
pub mod cpu;
mod graph;

pub use graph::ElementwiseOps;

use crate::error::Result;
use crate::gpu::{linear_grid, words, Dispatch, Gpu, Tensor};
use crate::ops::{check_len, compose, to_u32, vec_subs, vec_width, KernelSource};

const COMMON: &str = include_str!("../../../shaders/elementwise/common.wgsl");
const COPY: &str = include_str!("../../../shaders/elementwise/copy.wgsl");
const KERNELS: [(&str, &str); 5] = [
    ("fill", include_str!("../../../shaders/elementwise/fill.wgsl")),
    ("relu_forward", include_str!("../../../shaders/elementwise/relu_forward.wgsl")),
    ("relu_backward", include_str!("../../../shaders/elementwise/relu_backward.wgsl")),
    ("add", include_str!("../../../shaders/elementwise/add.wgsl")),
    ("scale", include_str!("../../../shaders/elementwise/scale.wgsl")),
];

fn source(name: &str, width: usize) -> String {
    let body = KERNELS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).expect("known kernel");
    compose(&[COMMON, body], &vec_subs(width))
}

fn run(gpu: &Gpu, name: &'static str, tensors: &[&Tensor], alpha: f32, beta: f32) -> Result<Dispatch> {
    run_flagged(gpu, name, tensors, alpha, beta, false)
}

/// `relu`: the add's output goes through max(., 0) in the same pass (the plan's fusion).
fn run_flagged(
    gpu: &Gpu,
    name: &'static str,
    tensors: &[&Tensor],
    alpha: f32,
    beta: f32,
    relu: bool,
) -> Result<Dispatch> {
    let len = tensors[0].len();
    for (i, t) in tensors.iter().enumerate() {
        check_len(name, &format!("operand {i}"), t, len)?;
    }
    let w = vec_width(len);
    let pipeline = gpu.pipeline(&format!("elementwise/{name}/w{w}"), || source(name, w), "main")?;
    let params = words(&ElementwiseParams { len: to_u32(name, len / w)?, relu: relu as u32, alpha, beta });
    let grid = linear_grid(gpu, name, (len / w).div_ceil(256) as u64)?;
    gpu.dispatch(name, &pipeline, &params, tensors, grid)
}

pub fn relu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    run(gpu, "relu_forward", &[x, y], 0.0, 0.0)
}

pub fn relu_backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    run(gpu, "relu_backward", &[x, dy, dx], 0.0, 0.0)
}

/// C = alpha*A + beta*B (C must be a different tensor from A and B).
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, alpha: f32, beta: f32) -> Result<Dispatch> {
    run(gpu, "add", &[a, b, c], alpha, beta)
}

/// C = max(alpha*A + beta*B, 0) in one pass: a residual add and the ReLU after it.
pub fn add_relu(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, alpha: f32, beta: f32) -> Result<Dispatch> {
    run_flagged(gpu, "add", &[a, b, c], alpha, beta, true)
}

pub fn scale(gpu: &Gpu, x: &Tensor, y: &Tensor, alpha: f32) -> Result<Dispatch> {
    run(gpu, "scale", &[x, y], alpha, 0.0)
}

/// Y = value everywhere.
pub fn fill(gpu: &Gpu, y: &Tensor, value: f32) -> Result<Dispatch> {
    run(gpu, "fill", &[y], value, 0.0)
}

/// Y[dst_offset .. dst_offset+len] = X[src_offset .. src_offset+len].
pub fn copy(gpu: &Gpu, x: &Tensor, y: &Tensor, src_offset: usize, dst_offset: usize, len: usize) -> Result<Dispatch> {
    const OP: &str = "copy";
    if len == 0 || src_offset + len > x.len() || dst_offset + len > y.len() {
        return Err(crate::Error::Shape {
            op: OP,
            detail: format!(
                "copy of {len} from offset {src_offset} of {:?} to offset {dst_offset} of {:?}",
                x.shape(),
                y.shape()
            ),
        });
    }
    let pipeline = gpu.pipeline("elementwise/copy", || COPY.to_string(), "main")?;
    let params = words(&CopyParams {
        len: to_u32(OP, len)?,
        src_offset: to_u32(OP, src_offset)?,
        dst_offset: to_u32(OP, dst_offset)?,
        _pad: 0,
    });
    let grid = linear_grid(gpu, OP, len.div_ceil(256) as u64)?;
    gpu.dispatch(OP, &pipeline, &params, &[x, y], grid)
}

/// `Params` of shaders/elementwise/common.wgsl (len counts V's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ElementwiseParams {
    len: u32,
    relu: u32,
    alpha: f32,
    beta: f32,
}

/// `Params` of shaders/elementwise/copy.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct CopyParams {
    len: u32,
    src_offset: u32,
    dst_offset: u32,
    _pad: u32,
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    let mut v: Vec<KernelSource> = KERNELS
        .iter()
        .flat_map(|(n, _)| [1, 4].map(|w| KernelSource { name: format!("elementwise/{n}/w{w}"), source: source(n, w) }))
        .collect();
    v.push(KernelSource { name: "elementwise/copy".into(), source: COPY.into() });
    v
}
