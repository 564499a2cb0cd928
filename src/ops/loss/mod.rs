//! Cross-entropy against soft targets, per row: L_i = -sum_k Q_ik log_softmax(scale * X_i)_k.
//! This is the swapped-prediction term of SwAV (X = scores, scale = 1/tau, Q = codes).
//! No gradient flows to Q (SwAV computes codes without gradient).
pub mod cpu;
mod graph;

pub use graph::LossOps;

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Kernel, Tensor};
use crate::ops::rows::{row_dispatch, row_source, with_logsumexp};
use crate::ops::{check_len, sources, KernelSource};

/// The family's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LossKernel {
    CrossEntropyForward,
    CrossEntropyBackward,
}

impl Kernel for LossKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some(("Params", std::mem::size_of::<crate::ops::rows::RowParams>()))
    }

    fn all() -> Vec<Self> {
        vec![Self::CrossEntropyForward, Self::CrossEntropyBackward]
    }

    fn name(&self) -> String {
        match self {
            Self::CrossEntropyForward => "loss/cross_entropy_forward",
            Self::CrossEntropyBackward => "loss/cross_entropy_backward",
        }
        .into()
    }

    fn source(&self) -> String {
        row_source(match self {
            Self::CrossEntropyForward => with_logsumexp!("../../../shaders/loss/cross_entropy_forward.wgsl"),
            Self::CrossEntropyBackward => with_logsumexp!("../../../shaders/loss/cross_entropy_backward.wgsl"),
        })
    }
}

/// Per-row losses into `loss` ([rows]).
pub fn cross_entropy_forward(
    gpu: &Gpu,
    x: &Tensor,
    q: &Tensor,
    loss: &Tensor,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<Dispatch> {
    const OP: &str = "cross_entropy";
    check_len(OP, "logits", x, rows * cols)?;
    check_len(OP, "targets", q, rows * cols)?;
    check_len(OP, "loss", loss, rows)?;
    row_dispatch(gpu, LossKernel::CrossEntropyForward, OP, &[x, q, loss], rows, cols, scale, 0.0)
}

/// dX from the per-row loss gradients `dloss` ([rows]).
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward(
    gpu: &Gpu,
    x: &Tensor,
    q: &Tensor,
    dloss: &Tensor,
    dx: &Tensor,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<Dispatch> {
    const OP: &str = "cross_entropy_backward";
    check_len(OP, "logits", x, rows * cols)?;
    check_len(OP, "targets", q, rows * cols)?;
    check_len(OP, "grad loss", dloss, rows)?;
    check_len(OP, "grad logits", dx, rows * cols)?;
    row_dispatch(gpu, LossKernel::CrossEntropyBackward, OP, &[x, q, dloss, dx], rows, cols, scale, 0.0)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<LossKernel>()
}
