//! The optimizer in WGSL: SGD with momentum and weight decay, inside LARS as apex LARC does it
//! (the official SwAV optimizer), or plain SGD; the learning-rate schedule (linear warm-up,
//! then cosine); prototype freezing. Runs as graph ops after the backward pass, so one plan
//! replay is a whole training step.
pub mod cpu;

use crate::error::Result;
use crate::gpu::{f, linear_grid, Dispatch, Gpu, Tensor};
use crate::graph::{Graph, Kind, Op, TensorId};
use crate::ops::reduce::{self, ReduceOp};
use crate::ops::{check_len, to_u32, KernelSource};

const SGD_STEP: &str = include_str!("../../shaders/optim/sgd_step.wgsl");

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

/// Optimizer configuration (official SwAV defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerConfig {
    pub lars: bool,
    pub weight_decay: f32,
    pub momentum: f32,
    pub trust: f32,
    /// solo-learn's variant: biases and batch-norm parameters skip LARS and weight decay.
    pub exclude_bias_and_bn: bool,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig { lars: true, weight_decay: 1e-6, momentum: 0.9, trust: 0.001, exclude_bias_and_bn: false }
    }
}

/// apex LARC's eps.
pub const LARC_EPS: f32 = 1e-8;

/// One SGD(+LARS) step on `param` from `grad`; `opt` = [lr, prototypes_enabled].
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    gpu: &Gpu,
    param: &Tensor,
    grad: &Tensor,
    momentum: &Tensor,
    pnorm: &Tensor,
    gnorm: &Tensor,
    opt: &Tensor,
    loss: &Tensor,
    h: SgdHyper,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "sgd_step";
    let n = param.len();
    check_len(OP, "grad", grad, n)?;
    check_len(OP, "momentum", momentum, n)?;
    check_len(OP, "param norm", pnorm, 1)?;
    check_len(OP, "grad norm", gnorm, 1)?;
    check_len(OP, "optimizer state", opt, 2)?;
    check_len(OP, "loss", loss, 1)?;
    let mut d = Vec::new();
    if h.lars {
        d.extend(reduce::reduce_axis(gpu, param, pnorm, 1, n, 1, ReduceOp::Norm)?);
        d.extend(reduce::reduce_axis(gpu, grad, gnorm, 1, n, 1, ReduceOp::Norm)?);
    }
    let pipeline = gpu.pipeline("optim/sgd_step", || SGD_STEP.to_string(), "main");
    let params =
        [to_u32(OP, n)?, h.lars as u32, h.gated as u32, 0, f(h.weight_decay), f(h.momentum), f(h.trust), f(h.eps)];
    let grid = linear_grid(gpu, OP, n.div_ceil(256) as u64)?;
    d.push(gpu.dispatch(OP, &pipeline, &params, &[grad, pnorm, gnorm, opt, loss, param, momentum], grid)?);
    Ok(d)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    vec![KernelSource { name: "optim/sgd_step".into(), source: SGD_STEP.into() }]
}

/// Whether a parameter is a bias or a batch-norm weight (1-D), for `exclude_bias_and_bn`.
pub fn is_bias_or_bn(g: &Graph, t: TensorId) -> bool {
    g.shape(t).len() == 1
}

/// The optimizer's tensors in a graph.
#[derive(Clone, Debug)]
pub struct OptimizerTensors {
    /// [2]: learning rate, prototypes enabled (1) or frozen (0). Written every step.
    pub state: TensorId,
    /// parameter -> momentum buffer (`momentum.<name>`).
    pub momentum: Vec<(TensorId, TensorId)>,
}

impl Graph {
    /// Appends the optimizer step for every parameter with a gradient (after `backward`).
    /// Parameters named `prototypes.weight` are gated by the freeze flag; nothing moves when
    /// `loss` is not finite.
    pub fn optimizer(&mut self, cfg: &OptimizerConfig, loss: TensorId) -> Result<OptimizerTensors> {
        let state = self.input("optimizer.state", &[2])?;
        let params: Vec<(TensorId, TensorId)> =
            self.grads.iter().filter(|(p, _)| self.info(**p).kind == Kind::Parameter).map(|(p, g)| (*p, *g)).collect();
        let mut momentum = Vec::new();
        for (p, grad) in params {
            let name = self.info(p).name.clone();
            let shape = self.shape(p).to_vec();
            let m = self.buffer(&format!("momentum.{name}"), &shape)?;
            let plain = cfg.exclude_bias_and_bn && is_bias_or_bn(self, p);
            let h = SgdHyper {
                lars: cfg.lars && !plain,
                weight_decay: if plain { 0.0 } else { cfg.weight_decay },
                momentum: cfg.momentum,
                trust: cfg.trust,
                eps: LARC_EPS,
                gated: name == "prototypes.weight",
            };
            let pn = self.scratch("optim.param_norm", &[1]);
            let gn = self.scratch("optim.grad_norm", &[1]);
            self.ops.push(Op::SgdStep { param: p, grad, momentum: m, pnorm: pn, gnorm: gn, state, loss, h });
            momentum.push((p, m));
        }
        Ok(OptimizerTensors { state, momentum })
    }
}

/// The official schedule: `warmup_iters` values linearly from `start_warmup` to `base` (numpy
/// linspace, endpoint included), then cosine from `base` down to `final_lr` over the rest.
pub fn lr_schedule(base: f64, final_lr: f64, start_warmup: f64, warmup_iters: usize, total_iters: usize) -> Vec<f64> {
    let mut lr = Vec::with_capacity(total_iters);
    for i in 0..warmup_iters.min(total_iters) {
        let t = if warmup_iters > 1 { i as f64 / (warmup_iters - 1) as f64 } else { 0.0 };
        lr.push(start_warmup + (base - start_warmup) * t);
    }
    let cosine_iters = total_iters.saturating_sub(warmup_iters);
    for t in 0..cosine_iters {
        lr.push(
            final_lr + 0.5 * (base - final_lr) * (1.0 + (std::f64::consts::PI * t as f64 / cosine_iters as f64).cos()),
        );
    }
    lr
}
