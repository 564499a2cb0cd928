//! The optimizer: SGD with momentum and weight decay, inside LARS as apex LARC does it (the
//! official SwAV optimizer), plain SGD, or Adam (torch.optim.Adam, the small-data recipe),
//! appended to the graph after the backward pass so one plan replay is a whole training step;
//! the learning-rate schedule (linear warm-up, then cosine); prototype freezing; loss scaling
//! (`loss_scale`). The update kernels are `ops::optim`.
mod loss_scale;

pub use loss_scale::{LossScale, LossScaler, GROWTH_INTERVAL, INIT_SCALE};

use crate::error::Result;
use crate::graph::{Graph, Kind, TensorId};
use crate::ops::elementwise::ElementwiseOps;
pub use crate::ops::optim::{AdamHyper, SgdHyper, StepState, STATE_LEN};
use crate::ops::optim::{AdamTensors, OptimOps, SgdTensors};

/// Adam's bias corrections (1 - b1^t, 1 - b2^t) after `t` steps (t >= 1).
pub fn adam_corrections(t: usize) -> (f64, f64) {
    let t = t as f64;
    let c = |b: f32| -(t * (b as f64).ln()).exp_m1();
    (c(ADAM_BETAS.0), c(ADAM_BETAS.1))
}

/// The state tensor's values for one step: `step` is the 0-based iteration, the prototypes
/// move from iteration `unfreeze` on.
pub fn step_state(lr: f64, step: usize, unfreeze: usize) -> StepState {
    step_state_after_skips(lr, step, unfreeze, 0, 0)
}

/// `step_state` after `skipped` steps that loss scaling skipped (`skipped_unfrozen` of them
/// while the prototypes moved): Adam's t counts the steps taken (1/S is 1 here; the
/// `LossScaler` sets it).
pub fn step_state_after_skips(
    lr: f64,
    step: usize,
    unfreeze: usize,
    skipped: usize,
    skipped_unfrozen: usize,
) -> StepState {
    let on = step >= unfreeze;
    StepState {
        lr,
        prototypes_on: on,
        corrections: adam_corrections(step.saturating_sub(skipped) + 1),
        prototype_corrections: match on {
            true => adam_corrections((step - unfreeze).saturating_sub(skipped_unfrozen) + 1),
            false => (1.0, 1.0),
        },
        inv_scale: 1.0,
    }
}

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum inside apex LARC (the official SwAV optimizer).
    Lars,
    /// SGD with momentum and L2 weight decay.
    Sgd,
    /// torch.optim.Adam (betas 0.9 / 0.999, eps 1e-8, L2 weight decay).
    Adam,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Lars => "lars",
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        })
    }
}

impl std::str::FromStr for OptimizerKind {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lars" => Ok(OptimizerKind::Lars),
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            other => Err(crate::error::Error::Invalid(format!("unknown optimizer '{other}': use lars, sgd or adam"))),
        }
    }
}

/// Whether a buffer name is optimizer state or a queue (zero at the start of a run, optional
/// in a state dict, never part of an exported model).
pub fn is_run_state(name: &str) -> bool {
    name.starts_with("momentum.") || name.starts_with("adam_v.") || name.starts_with("queue.")
}

/// torch.optim.Adam's defaults.
pub const ADAM_BETAS: (f32, f32) = (0.9, 0.999);
pub const ADAM_EPS: f32 = 1e-8;

/// Optimizer configuration (official SwAV defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub weight_decay: f32,
    pub momentum: f32,
    pub trust: f32,
    /// solo-learn's variant: biases and batch-norm parameters skip LARS and weight decay.
    pub exclude_bias_and_bn: bool,
    /// Loss scaling: the gradients arrive scaled by S (the backward pass was seeded with it),
    /// are unscaled by the step state's 1/S, and a step with a non-finite one is skipped.
    pub loss_scaling: bool,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Lars,
            weight_decay: 1e-6,
            momentum: 0.9,
            trust: 0.001,
            exclude_bias_and_bn: false,
            loss_scaling: false,
        }
    }
}

/// apex LARC's eps.
pub const LARC_EPS: f32 = 1e-8;

/// Whether a parameter is a bias or a batch-norm weight (1-D), for `exclude_bias_and_bn`.
pub fn is_bias_or_bn(g: &Graph, t: TensorId) -> bool {
    g.shape(t).len() == 1
}

/// The optimizer's tensors in a graph.
#[derive(Clone, Debug)]
pub struct OptimizerTensors {
    /// [STATE_LEN]: learning rate, prototypes enabled, step counts, 1/S. Written every step.
    pub state: TensorId,
    /// parameter -> momentum buffer (`momentum.<name>`; Adam's first moment).
    pub momentum: Vec<(TensorId, TensorId)>,
    /// With loss scaling, the step's found_inf (kept as `optim.found_inf`): 0 when every
    /// gradient was finite and the step was taken, +inf when it was skipped.
    pub found_inf: Option<TensorId>,
}

/// One parameter's update, before it is recorded.
struct Update {
    param: TensorId,
    grad: TensorId,
    momentum: TensorId,
    op: OptimOps,
}

impl Graph {
    /// Appends the optimizer step for every parameter with a gradient (after `backward`).
    /// The parameters in `gated` (SwAV's prototypes) move only while the step state's freeze
    /// flag is on; nothing moves when `loss` is not finite. With `cfg.loss_scaling` the loss,
    /// every gradient and LARS's gradient norms are checked first, and nothing moves when one
    /// of them is not finite.
    pub fn optimizer(&mut self, cfg: &OptimizerConfig, loss: TensorId, gated: &[TensorId]) -> Result<OptimizerTensors> {
        let state = self.input("optimizer.state", &[STATE_LEN])?;
        let params: Vec<(TensorId, TensorId)> =
            self.grads.iter().filter(|(p, _)| self.info(**p).kind == Kind::Parameter).map(|(p, g)| (*p, *g)).collect();
        if self.world > 1 {
            // Data-parallel: every rank applies the same update from the averaged gradients
            // (and reports the average loss), one exchange for all of them.
            let mut xs = vec![loss];
            xs.extend(params.iter().map(|(_, g)| *g));
            self.all_reduce(&xs, 1.0 / self.world as f32)?;
        }
        // With loss scaling every update skips on found_inf in place of the loss.
        let found_inf = cfg.loss_scaling.then(|| self.scratch("optim.found_inf", &[1]));
        let guard = found_inf.unwrap_or(loss);
        let mut updates = Vec::new();
        for (p, grad) in params {
            updates.push(self.update_op(cfg, p, grad, state, guard, gated.contains(&p))?);
        }
        if let Some(f) = found_inf {
            self.keep(f, "optim.found_inf");
            self.check_finite(f, loss, &updates);
        }
        let momentum = updates.iter().map(|u| (u.param, u.momentum)).collect();
        for u in updates {
            self.ops.push(u.op.into());
        }
        Ok(OptimizerTensors { state, momentum, found_inf })
    }

    /// The update of `param` (its optimizer state made here), not yet recorded.
    fn update_op(
        &mut self,
        cfg: &OptimizerConfig,
        param: TensorId,
        grad: TensorId,
        state: TensorId,
        guard: TensorId,
        gated: bool,
    ) -> Result<Update> {
        let name = self.info(param).name.clone();
        let shape = self.shape(param).to_vec();
        let momentum = self.buffer(&format!("momentum.{name}"), &shape)?;
        let plain = cfg.exclude_bias_and_bn && is_bias_or_bn(self, param);
        let (weight_decay, unscale) = (if plain { 0.0 } else { cfg.weight_decay }, cfg.loss_scaling);
        if cfg.kind == OptimizerKind::Adam {
            let m2 = self.buffer(&format!("adam_v.{name}"), &shape)?;
            let h = AdamHyper { weight_decay, beta1: ADAM_BETAS.0, beta2: ADAM_BETAS.1, eps: ADAM_EPS, gated, unscale };
            let t = AdamTensors { param, grad, m1: momentum, m2, state, loss: guard };
            return Ok(Update { param, grad, momentum, op: OptimOps::AdamStep { t, h } });
        }
        let lars = cfg.kind == OptimizerKind::Lars && !plain;
        let h =
            SgdHyper { lars, weight_decay, momentum: cfg.momentum, trust: cfg.trust, eps: LARC_EPS, gated, unscale };
        let pnorm = self.scratch("optim.param_norm", &[1]);
        let gnorm = self.scratch("optim.grad_norm", &[1]);
        let t = SgdTensors { param, grad, momentum, pnorm, gnorm, state, loss: guard };
        Ok(Update { param, grad, momentum, op: OptimOps::SgdStep { t, h } })
    }

    /// Loss scaling's check, recorded before any update: `found_inf` starts at 0 and becomes
    /// +inf if the loss, a gradient, or a gradient norm LARS computes (here, before any
    /// parameter moves) is NaN or infinite.
    fn check_finite(&mut self, found_inf: TensorId, loss: TensorId, updates: &[Update]) {
        self.ops.push(ElementwiseOps::Fill { y: found_inf, value: 0.0 }.into());
        self.ops.push(OptimOps::CheckFinite { x: loss, found_inf }.into());
        for u in updates {
            if let OptimOps::SgdStep { t, h } = &u.op {
                if h.lars {
                    let (param, grad, pnorm, gnorm) = (t.param, t.grad, t.pnorm, t.gnorm);
                    self.ops.push(OptimOps::SgdNorms { param, grad, pnorm, gnorm }.into());
                    self.ops.push(OptimOps::CheckFinite { x: gnorm, found_inf }.into());
                }
            }
            self.ops.push(OptimOps::CheckFinite { x: u.grad, found_inf }.into());
        }
    }
}

/// The official schedule: `warmup_iters` values linearly from `start_warmup` to `base` (numpy
/// linspace, endpoint included), then cosine from `base` down to `final_lr` over the rest.
/// Computed per iteration, so that a long run holds no table of `total_iters` numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LrSchedule {
    pub base: f64,
    pub final_lr: f64,
    pub start_warmup: f64,
    pub warmup_iters: usize,
    pub total_iters: usize,
}

impl LrSchedule {
    /// The rate of iteration `i`; `final_lr` past the end.
    pub fn at(&self, i: usize) -> f64 {
        let (warmup, total) = (self.warmup_iters, self.total_iters);
        if i >= total {
            self.final_lr
        } else if i < warmup {
            let t = if warmup > 1 { i as f64 / (warmup - 1) as f64 } else { 0.0 };
            self.start_warmup + (self.base - self.start_warmup) * t
        } else {
            let (t, cosine_iters) = (i - warmup, total - warmup);
            self.final_lr
                + 0.5
                    * (self.base - self.final_lr)
                    * (1.0 + (std::f64::consts::PI * t as f64 / cosine_iters as f64).cos())
        }
    }
}

/// Every rate of `LrSchedule` (the fixture tests compare the whole table).
pub fn lr_schedule(base: f64, final_lr: f64, start_warmup: f64, warmup_iters: usize, total_iters: usize) -> Vec<f64> {
    let s = LrSchedule { base, final_lr, start_warmup, warmup_iters, total_iters };
    (0..total_iters).map(|i| s.at(i)).collect()
}
