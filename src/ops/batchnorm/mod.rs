//! Batch-norm over [batch, channels, spatial] (BatchNorm2d: spatial = H*W; BatchNorm1d:
//! spatial = 1). Training mode normalises with the batch mean and *biased* variance and moves
//! the running stats towards the mean and the *unbiased* variance (PyTorch semantics);
//! eval mode uses the running stats. Backward gives dX, dgamma, dbeta.
pub mod cpu;
mod graph;

pub use graph::BatchNormOps;

use crate::dist::Reduce;
use crate::error::{shape_err, Result};
use crate::gpu::{linear_grid, runs, words, Dispatch, Exchange, Gpu, Kernel, Step, Tensor};
use crate::ops::{
    activation_type, check_len, check_typed, compose_typed, sources, to_u32, vec_subs, vec_width, KernelSource, Layout,
};

const REDUCE: &str = include_str!("../../../shaders/common/workgroup_reduce.wgsl");
const COMMON: &str = include_str!("../../../shaders/batchnorm/common.wgsl");
const STATS: &str = include_str!("../../../shaders/batchnorm/stats.wgsl");
const APPLY: &str = include_str!("../../../shaders/batchnorm/apply.wgsl");
const BACKWARD_STATS: &str = include_str!("../../../shaders/batchnorm/backward_stats.wgsl");
const BACKWARD_INPUT: &str = include_str!("../../../shaders/batchnorm/backward_input.wgsl");
const ELEMENTWISE: &str = include_str!("../../../shaders/batchnorm/elementwise.wgsl");

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormShape {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub eps: f32,
    pub momentum: f32,
    /// Apply ReLU to Y in the same pass (set by the plan's BN+ReLU fusion, never by models).
    pub relu: bool,
    /// Ranks whose batches are normalised together (synchronised batch-norm over a
    /// data-parallel job; 1 otherwise). See `forward_train_steps`.
    pub world: usize,
}

impl BatchNormShape {
    pub fn new(batch: usize, channels: usize, spatial: usize) -> Self {
        BatchNormShape { batch, channels, spatial, eps: 1e-5, momentum: 0.1, relu: false, world: 1 }
    }
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn params(&self, training: bool, update_running: bool) -> Result<Vec<u32>> {
        self.staged_params(training, update_running, Stage::All)
    }
    fn staged_params(&self, training: bool, update_running: bool, stage: Stage) -> Result<Vec<u32>> {
        Ok(words(&BatchNormParams {
            batch: to_u32("batchnorm", self.batch)?,
            channels: to_u32("batchnorm", self.channels)?,
            spatial: to_u32("batchnorm", self.spatial)?,
            training: training as u32,
            eps: self.eps,
            momentum: self.momentum,
            update_running: update_running as u32,
            relu: self.relu as u32,
            world: to_u32("batchnorm", self.world)?,
            stage: stage as u32,
            pad: [0; 2],
        }))
    }
}

/// `Params` of shaders/batchnorm/common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct BatchNormParams {
    batch: u32,
    channels: u32,
    spatial: u32,
    training: u32,
    eps: f32,
    momentum: f32,
    update_running: u32,
    relu: u32,
    world: u32,
    stage: u32,
    pad: [u32; 2],
}

/// Which part of the statistics kernel runs (`stage` in shaders/batchnorm/stats.wgsl).
#[derive(Clone, Copy)]
enum Stage {
    All = 0,
    MeanOnly = 1,
    VarOnly = 2,
    RunningOnly = 3,
}

/// Elements per load in every batch-norm kernel: 4 (vec4) when every channel's run of
/// `spatial` elements splits into whole vec4s; activations stored as `x` is (f32 or f16).
fn layout(s: &BatchNormShape, x: &Tensor) -> Result<Layout> {
    Ok(Layout::new(vec_width(s.spatial), activation_type("batchnorm", x)?))
}

/// The family's kernels, each at a vector width (1 or 4): the statistics (own entry point),
/// the per-element apply and dX (`element` functions under batchnorm/elementwise.wgsl's entry
/// point), and the backward statistics, `masked` when the ReLU-backward of a fused BN+ReLU
/// is done as dY is read (MASK, bound last, is relu(Y); the masked dY is stored back into DY
/// in place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BatchNormKernel {
    Stats(Layout),
    Apply(Layout),
    BackwardInput(Layout),
    BackwardStats { masked: bool, layout: Layout },
}

impl Kernel for BatchNormKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some(("Params", std::mem::size_of::<BatchNormParams>()))
    }

    fn all() -> Vec<Self> {
        let mut v = Vec::new();
        for l in Layout::all() {
            v.extend([Self::Stats(l), Self::Apply(l), Self::BackwardInput(l)]);
            v.extend([false, true].map(|masked| Self::BackwardStats { masked, layout: l }));
        }
        v
    }

    fn name(&self) -> String {
        match *self {
            Self::Stats(l) => format!("batchnorm/stats/{}", l.suffix()),
            Self::Apply(l) => format!("batchnorm/apply/{}", l.suffix()),
            Self::BackwardInput(l) => format!("batchnorm/backward_input/{}", l.suffix()),
            Self::BackwardStats { masked, layout } => {
                format!("batchnorm/backward_stats{}/{}", if masked { "_relu" } else { "" }, layout.suffix())
            }
        }
    }

    fn source(&self) -> String {
        match *self {
            Self::Stats(l) => compose_typed(l.act, &[REDUCE, COMMON, STATS], &vec_subs(l)),
            Self::Apply(l) => compose_typed(l.act, &[REDUCE, COMMON, APPLY, ELEMENTWISE], &vec_subs(l)),
            Self::BackwardInput(l) => {
                compose_typed(l.act, &[REDUCE, COMMON, BACKWARD_INPUT, ELEMENTWISE], &vec_subs(l))
            }
            Self::BackwardStats { masked, layout } => {
                let mut subs = vec_subs(layout).to_vec();
                if masked {
                    subs.push(("DY_ACCESS", "read_write".into()));
                    subs.push(("MASK_BINDING", "@group(0) @binding(7) var<storage, read> MASK: array<S>;".into()));
                    subs.push((
                        "LOAD_DY",
                        "let dy = select(V(0.0), V(DY[o]), V(MASK[o]) > V(0.0));\n        DY[o] = S(dy);".into(),
                    ));
                } else {
                    subs.push(("DY_ACCESS", "read".into()));
                    subs.push(("MASK_BINDING", String::new()));
                    subs.push(("LOAD_DY", "let dy = V(DY[o]);".into()));
                }
                compose_typed(layout.act, &[REDUCE, COMMON, BACKWARD_STATS], &subs)
            }
        }
    }
}

/// The grid of the per-element kernels (one invocation per V).
fn element_grid(gpu: &Gpu, s: &BatchNormShape) -> Result<[u32; 3]> {
    linear_grid(gpu, "batchnorm", (s.len() / vec_width(s.spatial)).div_ceil(256) as u64)
}

op_tensors! {
    /// A batch-norm's tensors: input, affine parameters, running statistics, output.
    BatchNormTensors { x, gamma, beta, running_mean, running_var, y }
}

op_tensors! {
    /// A batch-norm backward's tensors: the forward input, the output gradient, the
    /// statistics the forward used, gamma, the three gradients; and, where the plan fused the
    /// following ReLU, its output (`relu_mask`).
    BatchNormBackwardTensors { x, dy, mean, var, gamma, dgamma, dbeta, dx } optional { relu_mask }
}

/// Training-mode forward: writes the batch `mean` and biased `var` (kept for backward), updates
/// the running stats when `update_running`, and writes Y.
pub fn forward_train(
    gpu: &Gpu,
    t: &BatchNormTensors<&Tensor>,
    (mean, var): (&Tensor, &Tensor),
    s: BatchNormShape,
    update_running: bool,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "batchnorm";
    let BatchNormTensors { x, gamma, beta, running_mean, running_var, y } = *t;
    if s.batch * s.spatial < 2 {
        return shape_err(OP, format!("training batch-norm needs more than one value per channel, got {s:?}"));
    }
    let l = layout(&s, x)?;
    check_typed(OP, "input", x, s.len(), l.act)?;
    check_typed(OP, "output", y, s.len(), l.act)?;
    for (name, t) in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("mean", mean),
        ("var", var),
    ] {
        check_len(OP, name, t, s.channels)?;
    }
    let params = s.params(true, update_running)?;
    let stats = BatchNormKernel::Stats(l).dispatch(
        gpu,
        &params,
        &[x, mean, var, running_mean, running_var],
        [to_u32(OP, s.channels)?, 1, 1],
    )?;
    let grid = element_grid(gpu, &s)?;
    let apply = BatchNormKernel::Apply(l).dispatch(gpu, &params, &[x, mean, var, gamma, beta, y], grid)?;
    Ok(vec![stats, apply])
}

/// Training-mode forward as steps: `forward_train` on one rank; with `s.world` ranks
/// (synchronised batch-norm) the statistics are computed in stages with an all-reduce after
/// each, the mean first and then the variance around it (the same two passes as one rank's
/// kernel, so the statistics equal those of the concatenated batch), and every rank moves its
/// running stats alike.
pub fn forward_train_steps(
    gpu: &Gpu,
    t: &BatchNormTensors<&Tensor>,
    (mean, var): (&Tensor, &Tensor),
    s: BatchNormShape,
    update_running: bool,
) -> Result<Vec<Step>> {
    if s.world == 1 {
        return Ok(runs(forward_train(gpu, t, (mean, var), s, update_running)?));
    }
    let one = BatchNormShape { world: 1, ..s };
    let mut d = forward_train(gpu, t, (mean, var), one, update_running)?;
    let apply = d.pop().expect("stats then apply");
    let BatchNormTensors { x, running_mean, running_var, .. } = *t;
    let stage = |stage: Stage| -> Result<Step> {
        let p = s.staged_params(true, update_running, stage)?;
        let tensors = [x, mean, var, running_mean, running_var];
        Ok(Step::Run(BatchNormKernel::Stats(layout(&s, x)?).dispatch(
            gpu,
            &p,
            &tensors,
            [to_u32("batchnorm", s.channels)?, 1, 1],
        )?))
    };
    let average = 1.0 / s.world as f32;
    let mut steps = vec![
        stage(Stage::MeanOnly)?,
        Step::Exchange(Exchange::in_place("sync batch-norm mean", &[mean], Reduce::Sum, average)?),
        stage(Stage::VarOnly)?,
        Step::Exchange(Exchange::in_place("sync batch-norm variance", &[var], Reduce::Sum, average)?),
    ];
    if update_running {
        steps.push(stage(Stage::RunningOnly)?);
    }
    steps.push(Step::Run(apply));
    Ok(steps)
}

/// Eval-mode forward with the running statistics.
pub fn forward_eval(gpu: &Gpu, t: &BatchNormTensors<&Tensor>, s: BatchNormShape) -> Result<Dispatch> {
    const OP: &str = "batchnorm";
    let BatchNormTensors { x, gamma, beta, running_mean, running_var, y } = *t;
    let l = layout(&s, x)?;
    check_typed(OP, "input", x, s.len(), l.act)?;
    check_typed(OP, "output", y, s.len(), l.act)?;
    for (name, t) in [("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)] {
        check_len(OP, name, t, s.channels)?;
    }
    let grid = element_grid(gpu, &s)?;
    let tensors = [x, running_mean, running_var, gamma, beta, y];
    BatchNormKernel::Apply(l).dispatch(gpu, &s.params(false, false)?, &tensors, grid)
}

/// Backward: dgamma, dbeta, then dX. `mean`/`var` are the statistics the forward pass used
/// (batch stats in training, running stats in eval). With `relu_mask` (the output of a ReLU
/// the plan fused into the forward pass) `dy` is the gradient of that ReLU's output and is
/// masked where the mask is not positive, as ReLU-backward would. The masked gradient is
/// written back into `dy`, which the caller must not read afterwards.
pub fn backward(
    gpu: &Gpu,
    t: &BatchNormBackwardTensors<&Tensor>,
    s: BatchNormShape,
    training: bool,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "batchnorm_backward";
    let BatchNormBackwardTensors { x, dy, mean, var, gamma, dgamma, dbeta, dx, relu_mask } = *t;
    let l = layout(&s, x)?;
    check_typed(OP, "input", x, s.len(), l.act)?;
    check_typed(OP, "grad output", dy, s.len(), l.act)?;
    check_typed(OP, "grad input", dx, s.len(), l.act)?;
    if let Some(m) = relu_mask {
        check_typed(OP, "relu mask", m, s.len(), l.act)?;
    }
    for (name, t) in [("mean", mean), ("var", var), ("gamma", gamma), ("dgamma", dgamma), ("dbeta", dbeta)] {
        check_len(OP, name, t, s.channels)?;
    }
    let params = s.params(training, false)?;
    let mut tensors = vec![x, dy, mean, var, dgamma, dbeta];
    tensors.extend(relu_mask);
    let stats = BatchNormKernel::BackwardStats { masked: relu_mask.is_some(), layout: l }.dispatch(
        gpu,
        &params,
        &tensors,
        [to_u32(OP, s.channels)?, 1, 1],
    )?;
    let grid = element_grid(gpu, &s)?;
    let tensors = [x, dy, mean, var, gamma, dgamma, dbeta, dx];
    let input = BatchNormKernel::BackwardInput(l).dispatch(gpu, &params, &tensors, grid)?;
    Ok(vec![stats, input])
}

/// Backward as steps: `backward` on one rank; with `s.world` ranks (synchronised batch-norm)
/// the per-channel sums are all-reduced into separate tensors for dX (over the whole global
/// batch, as PyTorch's SyncBatchNorm), while dgamma and dbeta keep this rank's sums (the
/// gradient all-reduce averages them like every other gradient).
pub fn backward_steps(
    gpu: &Gpu,
    t: &BatchNormBackwardTensors<&Tensor>,
    s: BatchNormShape,
    training: bool,
) -> Result<Vec<Step>> {
    if s.world == 1 || !training {
        return Ok(runs(backward(gpu, t, BatchNormShape { world: 1, ..s }, training)?));
    }
    let mut d = backward(gpu, t, s, training)?;
    d.pop().expect("stats then dX");
    let BatchNormBackwardTensors { x, dy, mean, var, gamma, dgamma, dbeta, dx, .. } = *t;
    let sum_dgamma = gpu.tensor("sync batch-norm sum dgamma", &[s.channels])?;
    let sum_dbeta = gpu.tensor("sync batch-norm sum dbeta", &[s.channels])?;
    let view = |t: &Tensor| t.view(t.shape());
    let exchange = Exchange {
        label: "sync batch-norm gradient sums".into(),
        src: vec![view(dgamma)?, view(dbeta)?],
        dst: vec![view(&sum_dgamma)?, view(&sum_dbeta)?],
        reduce: Reduce::Sum,
        scale: 1.0,
    };
    let grid = element_grid(gpu, &s)?;
    let tensors = [x, dy, mean, var, gamma, &sum_dgamma, &sum_dbeta, dx];
    let params = s.params(training, false)?;
    let input = BatchNormKernel::BackwardInput(layout(&s, x)?).dispatch(gpu, &params, &tensors, grid)?;
    let mut steps = runs(d);
    steps.push(Step::Exchange(exchange));
    steps.push(Step::Run(input.keep(sum_dgamma).keep(sum_dbeta)));
    Ok(steps)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<BatchNormKernel>()
}
