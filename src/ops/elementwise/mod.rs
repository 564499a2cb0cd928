//! Elementwise ops: ReLU (forward, backward), add (C = alpha*A + beta*B: the residual add and
//! gradient accumulation) and scale (Y = alpha*X). Backward of add and scale are add and scale.
pub mod cpu;

use crate::error::Result;
use crate::gpu::{f, linear_grid, Dispatch, Gpu, Tensor};
use crate::ops::{check_len, compose, to_u32, KernelSource};

const COMMON: &str = include_str!("../../../shaders/elementwise/common.wgsl");
const KERNELS: [(&str, &str); 4] = [
    (
        "relu_forward",
        include_str!("../../../shaders/elementwise/relu_forward.wgsl"),
    ),
    (
        "relu_backward",
        include_str!("../../../shaders/elementwise/relu_backward.wgsl"),
    ),
    ("add", include_str!("../../../shaders/elementwise/add.wgsl")),
    (
        "scale",
        include_str!("../../../shaders/elementwise/scale.wgsl"),
    ),
];

fn run(
    gpu: &Gpu,
    name: &'static str,
    tensors: &[&Tensor],
    alpha: f32,
    beta: f32,
) -> Result<Dispatch> {
    let len = tensors[0].len();
    for (i, t) in tensors.iter().enumerate() {
        check_len(name, &format!("operand {i}"), t, len)?;
    }
    let body = KERNELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .expect("known kernel");
    let pipeline = gpu.pipeline(
        &format!("elementwise/{name}"),
        || compose(&[COMMON, body], &[]),
        "main",
    );
    let params = [to_u32(name, len)?, 0, f(alpha), f(beta)];
    let grid = linear_grid(gpu, name, len.div_ceil(256) as u64)?;
    gpu.dispatch(name, &pipeline, &params, tensors, grid)
}

pub fn relu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    run(gpu, "relu_forward", &[x, y], 0.0, 0.0)
}

pub fn relu_backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    run(gpu, "relu_backward", &[x, dy, dx], 0.0, 0.0)
}

/// C = alpha*A + beta*B (C must be a different tensor from A and B).
pub fn add(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    alpha: f32,
    beta: f32,
) -> Result<Dispatch> {
    run(gpu, "add", &[a, b, c], alpha, beta)
}

pub fn scale(gpu: &Gpu, x: &Tensor, y: &Tensor, alpha: f32) -> Result<Dispatch> {
    run(gpu, "scale", &[x, y], alpha, 0.0)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    KERNELS
        .iter()
        .map(|(n, b)| KernelSource {
            name: format!("elementwise/{n}"),
            source: compose(&[COMMON, b], &[]),
        })
        .collect()
}
