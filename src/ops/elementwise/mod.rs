//! Elementwise ops: ReLU (forward, backward), add (C = alpha*A + beta*B: the residual add and
//! gradient accumulation) and scale (Y = alpha*X). Backward of add and scale are add and scale.
pub mod cpu;
mod graph;

pub use graph::ElementwiseOps;

use crate::error::Result;
use crate::gpu::{linear_grid, words, DType, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::{
    activation_type, check_typed, compose, compose_typed, sources, to_u32, vec_subs, vec_width, KernelSource, Layout,
};

const COMMON: &str = include_str!("../../../shaders/elementwise/common.wgsl");
const COPY: &str = include_str!("../../../shaders/elementwise/copy.wgsl");
const CAST: &str = include_str!("../../../shaders/elementwise/cast.wgsl");

/// The per-element kernels under common.wgsl's entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Map {
    Fill,
    ReluForward,
    ReluBackward,
    Add,
    Scale,
}

impl Map {
    const ALL: [Map; 5] = [Map::Fill, Map::ReluForward, Map::ReluBackward, Map::Add, Map::Scale];

    fn name_and_body(self) -> (&'static str, &'static str) {
        match self {
            Map::Fill => ("fill", include_str!("../../../shaders/elementwise/fill.wgsl")),
            Map::ReluForward => ("relu_forward", include_str!("../../../shaders/elementwise/relu_forward.wgsl")),
            Map::ReluBackward => ("relu_backward", include_str!("../../../shaders/elementwise/relu_backward.wgsl")),
            Map::Add => ("add", include_str!("../../../shaders/elementwise/add.wgsl")),
            Map::Scale => ("scale", include_str!("../../../shaders/elementwise/scale.wgsl")),
        }
    }
}

/// The family's kernels: a per-element map at a layout (vector width 1 or 4, f32 or f16
/// activations), the copy, and the
/// casts between f32 and f16 storage (`to` the element type written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElementwiseKernel {
    Map(Map, Layout),
    Copy,
    Cast { to: DType },
}

/// The (from, to) WGSL element types of a cast writing `to`.
fn cast_types(to: DType) -> (&'static str, &'static str) {
    if to == DType::F16 {
        ("f32", "f16")
    } else {
        ("f16", "f32")
    }
}

impl Kernel for ElementwiseKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some(match self {
            Self::Map(..) => ("Params", std::mem::size_of::<ElementwiseParams>()),
            Self::Copy => ("CopyParams", std::mem::size_of::<CopyParams>()),
            Self::Cast { .. } => ("CastParams", std::mem::size_of::<CastParams>()),
        })
    }

    fn all() -> Vec<Self> {
        let mut v: Vec<Self> =
            Map::ALL.iter().flat_map(|&m| Layout::all().into_iter().map(move |l| Self::Map(m, l))).collect();
        v.push(Self::Copy);
        v.extend([DType::F16, DType::F32].map(|to| Self::Cast { to }));
        v
    }

    fn name(&self) -> String {
        match self {
            Self::Map(m, l) => format!("elementwise/{}/{}", m.name_and_body().0, l.suffix()),
            Self::Copy => "elementwise/copy".into(),
            Self::Cast { to } => {
                let (from, to) = cast_types(*to);
                format!("elementwise/cast_{from}_to_{to}")
            }
        }
    }

    fn source(&self) -> String {
        match self {
            Self::Map(m, l) => compose_typed(l.act, &[COMMON, m.name_and_body().1], &vec_subs(*l)),
            Self::Copy => COPY.into(),
            Self::Cast { to } => {
                let (from, to) = cast_types(*to);
                compose(&[CAST], &[("FROM", from.into()), ("TO", to.into())])
            }
        }
    }
}

fn run(gpu: &Gpu, map: Map, tensors: &[&Tensor], alpha: f32, beta: f32) -> Result<Dispatch> {
    run_flagged(gpu, map, tensors, alpha, beta, false)
}

/// `relu`: the add's output goes through max(., 0) in the same pass (the plan's fusion).
fn run_flagged(gpu: &Gpu, map: Map, tensors: &[&Tensor], alpha: f32, beta: f32, relu: bool) -> Result<Dispatch> {
    let op = map.name_and_body().0;
    let len = tensors[0].len();
    let act = activation_type(op, tensors[0])?;
    for (i, t) in tensors.iter().enumerate() {
        check_typed(op, &format!("operand {i}"), t, len, act)?;
    }
    let w = vec_width(len);
    let params = words(&ElementwiseParams { len: to_u32(op, len / w)?, relu: relu as u32, alpha, beta });
    let grid = linear_grid(gpu, op, (len / w).div_ceil(256) as u64)?;
    ElementwiseKernel::Map(map, Layout::new(w, act)).dispatch(gpu, &params, tensors, grid)
}

pub fn relu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    run(gpu, Map::ReluForward, &[x, y], 0.0, 0.0)
}

pub fn relu_backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    run(gpu, Map::ReluBackward, &[x, dy, dx], 0.0, 0.0)
}

/// C = alpha*A + beta*B (C must be a different tensor from A and B).
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, alpha: f32, beta: f32) -> Result<Dispatch> {
    run(gpu, Map::Add, &[a, b, c], alpha, beta)
}

/// C = max(alpha*A + beta*B, 0) in one pass: a residual add and the ReLU after it.
pub fn add_relu(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, alpha: f32, beta: f32) -> Result<Dispatch> {
    run_flagged(gpu, Map::Add, &[a, b, c], alpha, beta, true)
}

pub fn scale(gpu: &Gpu, x: &Tensor, y: &Tensor, alpha: f32) -> Result<Dispatch> {
    run(gpu, Map::Scale, &[x, y], alpha, 0.0)
}

/// Y = value everywhere.
pub fn fill(gpu: &Gpu, y: &Tensor, value: f32) -> Result<Dispatch> {
    run(gpu, Map::Fill, &[y], value, 0.0)
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
    if x.dtype() != DType::F32 || y.dtype() != DType::F32 {
        return Err(crate::Error::Shape {
            op: OP,
            detail: format!("a copy of {} into {} (f32 only)", x.dtype(), y.dtype()),
        });
    }
    let params = words(&CopyParams {
        len: to_u32(OP, len)?,
        src_offset: to_u32(OP, src_offset)?,
        dst_offset: to_u32(OP, dst_offset)?,
        _pad: 0,
    });
    let grid = linear_grid(gpu, OP, len.div_ceil(256) as u64)?;
    ElementwiseKernel::Copy.dispatch(gpu, &params, &[x, y], grid)
}

/// Y = X stored as Y's element type: f32 -> f16 (rounded to a neighbouring f16; beyond the
/// f16 range, infinity or the largest f16) or f16 -> f32 (exact). Needs `gpu.f16`.
pub fn cast(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    const OP: &str = "cast";
    let shape_err = |detail: String| Err(crate::Error::Shape { op: OP, detail });
    let to = match (x.dtype(), y.dtype()) {
        (DType::F32, DType::F16) => DType::F16,
        (DType::F16, DType::F32) => DType::F32,
        (from, to) => return shape_err(format!("a cast from {from} to {to} (f32 <-> f16 only)")),
    };
    if x.len() != y.len() {
        return shape_err(format!(
            "{} elements into {} (shapes {:?} and {:?})",
            x.len(),
            y.len(),
            x.shape(),
            y.shape()
        ));
    }
    if !gpu.f16 {
        return shape_err(format!("{} has no shader-f16 (f16 storage needs it)", gpu.info.name));
    }
    let params = words(&CastParams { len: to_u32(OP, x.len())?, _pad: [0; 3] });
    let grid = linear_grid(gpu, OP, x.len().div_ceil(256) as u64)?;
    ElementwiseKernel::Cast { to }.dispatch(gpu, &params, &[x, y], grid)
}

/// `CastParams` of shaders/elementwise/cast.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct CastParams {
    len: u32,
    _pad: [u32; 3],
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
    sources::<ElementwiseKernel>()
}
