//! A whole SwAV training step as one compiled plan: multi-crop forward (ResNet + head), the
//! SwAV objective, backward, and the optimizer; plus initialisation, the learning-rate
//! schedule, prototype freezing, the queue's start, loss scaling, checkpoints and backbone
//! export.
pub mod backbone;
#[cfg(not(target_arch = "wasm32"))]
pub mod checkpoint;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod parallel;
pub mod precision;

use std::sync::Arc;

pub use crate::data::augment::CropConfig;
pub use config::TrainConfig;

use crate::dist::{Collective, Solo};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::Plan;
use crate::graph::{Graph, Kind, TensorId};
use crate::model::{multicrop_forward, HeadOutputs};
use crate::optim::{LossScaler, LrSchedule, OptimizerTensors};
use crate::rng::Rng;
use crate::swav::{self, SwavObjective};

/// The training graph and the ids the trainer drives.
pub struct TrainGraph {
    pub graph: Graph,
    pub crops: Vec<TensorId>,
    pub head: HeadOutputs,
    pub objective: SwavObjective,
    pub optimizer: OptimizerTensors,
    /// With loss scaling, the input the backward pass is seeded with (`loss.scale`, [1]).
    pub loss_scale: Option<TensorId>,
}

/// Builds forward + SwAV loss + backward + optimizer for `cfg`.
pub fn build_graph(cfg: &TrainConfig) -> Result<TrainGraph> {
    build_graph_for(cfg, 1)
}

/// The step of one rank of a data-parallel job of `world` ranks: its own batch of
/// `cfg.batch_size`, Sinkhorn over every rank's scores, gradients averaged over the ranks
/// before the optimizer (so all apply the same update), batch-norm synchronised with
/// `cfg.sync_bn`, and its share of the queue.
pub fn build_graph_for(cfg: &TrainConfig, world: usize) -> Result<TrainGraph> {
    cfg.validate()?;
    let mut g = Graph::new();
    g.world = world.max(1);
    g.sync_bn = cfg.sync_bn;
    let mut crops = Vec::new();
    for c in &cfg.crops {
        for _ in 0..c.count {
            let i = crops.len();
            crops.push(g.input(&format!("crop{i}"), &[cfg.batch_size, 3, c.size, c.size])?);
        }
    }
    let head = multicrop_forward(&mut g, &cfg.backbone()?, &cfg.head(), &crops, true)?;
    let objective = swav::objective(&mut g, &cfg.swav_for(world), head.emb, head.scores, head.prototypes)?;
    // The embeddings of the step stay readable (nearest neighbours in the demo, inspection).
    g.keep(head.emb, "emb");
    // Loss scaling seeds the loss's gradient with the scale S of the step (else 1).
    let loss_scale = cfg.loss_scale.is_on().then(|| g.input("loss.scale", &[1])).transpose()?;
    match loss_scale {
        Some(seed) => g.backward_scaled(objective.loss, seed)?,
        None => g.backward(objective.loss)?,
    }
    // The prototypes stay frozen for the first `freeze_prototypes_niters` iterations.
    let optimizer = g.optimizer(&cfg.optimizer(), objective.loss, &[head.prototypes])?;
    Ok(TrainGraph { graph: g, crops, head, objective, optimizer, loss_scale })
}

pub struct Trainer {
    pub cfg: TrainConfig,
    /// The ranks of the job (`Solo` for one process).
    pub collective: Arc<dyn Collective>,
    pub plan: Plan,
    pub ids: TrainGraphIds,
    /// Optimizer steps done so far.
    pub iteration: usize,
    pub iters_per_epoch: usize,
    schedule: LrSchedule,
    /// The loss scale and what it did so far (`LossScaler::new(Off)` without loss scaling).
    pub scaler: LossScaler,
    /// A test's overflow: the next step is seeded with +inf (`inject_overflow`).
    #[cfg(feature = "test-hooks")]
    overflow_next: bool,
}

/// The ids of `TrainGraph` without the graph (the plan owns a copy).
#[derive(Clone, Debug)]
pub struct TrainGraphIds {
    pub crops: Vec<TensorId>,
    /// L2-normalised embeddings of the last step [n_crops * batch, D], crop-major.
    pub emb: TensorId,
    pub loss: TensorId,
    pub codes: Vec<TensorId>,
    pub queue_active: TensorId,
    pub has_queue: bool,
    pub optimizer_state: TensorId,
    pub momentum: Vec<(TensorId, TensorId)>,
    /// With loss scaling: the seed S (an input) and the step's found_inf (kept).
    pub loss_scale: Option<TensorId>,
    pub found_inf: Option<TensorId>,
}

impl Trainer {
    /// Compiles the training step on `gpu`. Parameters start uninitialised: call
    /// `init_random` or `load_state`/`load_checkpoint`.
    pub fn new(gpu: Arc<Gpu>, cfg: TrainConfig, iters_per_epoch: usize) -> Result<Trainer> {
        Trainer::new_in(gpu, cfg, iters_per_epoch, Arc::new(Solo))
    }

    /// A trainer for one rank of `collective`'s world.
    pub fn new_in(
        gpu: Arc<Gpu>,
        cfg: TrainConfig,
        iters_per_epoch: usize,
        collective: Arc<dyn Collective>,
    ) -> Result<Trainer> {
        let tg = build_graph_for(&cfg, collective.world())?;
        Trainer::from_graph(gpu, cfg, iters_per_epoch, &tg, collective)
    }

    /// Compiles `tg` (built by `build_graph_for` for `cfg` and this world; a caller may
    /// mark more tensors kept first, e.g. the gradients).
    pub fn from_graph(
        gpu: Arc<Gpu>,
        cfg: TrainConfig,
        iters_per_epoch: usize,
        tg: &TrainGraph,
        collective: Arc<dyn Collective>,
    ) -> Result<Trainer> {
        precision::check(&cfg, &gpu)?;
        let fuse = crate::graph::plan::fusion_enabled();
        let plan = Plan::compile_in(&tg.graph, gpu, fuse, collective.clone())?;
        let ids = TrainGraphIds {
            crops: tg.crops.clone(),
            emb: tg.head.emb,
            loss: tg.objective.loss,
            codes: tg.objective.codes.clone(),
            queue_active: tg.objective.queue_active,
            has_queue: !tg.objective.queues.is_empty(),
            optimizer_state: tg.optimizer.state,
            momentum: tg.optimizer.momentum.clone(),
            loss_scale: tg.loss_scale,
            found_inf: tg.optimizer.found_inf,
        };
        let scaler = LossScaler::new(cfg.loss_scale, cfg.loss_scale_growth_interval);
        let mut t = Trainer {
            cfg,
            collective,
            plan,
            ids,
            iteration: 0,
            iters_per_epoch: 1,
            schedule: LrSchedule::default(),
            scaler,
            #[cfg(feature = "test-hooks")]
            overflow_next: false,
        };
        t.set_iters_per_epoch(iters_per_epoch);
        t.zero_state()?;
        Ok(t)
    }

    pub fn graph(&self) -> &Graph {
        self.plan.graph()
    }

    /// Sets the epoch length (the data changed) and the learning-rate schedule with it.
    pub fn set_iters_per_epoch(&mut self, iters_per_epoch: usize) {
        let cfg = &self.cfg;
        self.iters_per_epoch = iters_per_epoch.max(1);
        let total = cfg.epochs.saturating_mul(self.iters_per_epoch);
        let warmup = ((cfg.warmup_epochs * self.iters_per_epoch as f64).round() as usize).min(total);
        self.schedule = LrSchedule {
            base: cfg.lr,
            final_lr: cfg.final_lr,
            start_warmup: cfg.start_warmup,
            warmup_iters: warmup,
            total_iters: total,
        };
    }

    /// Zero optimizer state and queues.
    fn zero_state(&self) -> Result<()> {
        for (name, t) in self.graph().named(Kind::Buffer) {
            if crate::optim::is_run_state(&name) {
                self.plan.write(t, &vec![0.0; self.graph().info(t).len()])?;
            }
        }
        Ok(())
    }

    /// PyTorch's initialisation: convs kaiming-normal (fan_out, ReLU) as torchvision's
    /// ResNet, batch-norm weight 1 and bias 0 with running stats 0 / 1, linear layers
    /// uniform(+-1/sqrt(fan_in)) as nn.Linear, prototypes likewise.
    pub fn init_random(&self, seed: u64) -> Result<()> {
        let mut rng = Rng::new(seed);
        let g = self.graph().clone();
        for (name, t) in g.named(Kind::Parameter).into_iter().chain(g.named(Kind::Buffer)) {
            let shape = g.shape(t).to_vec();
            let n = g.info(t).len();
            let data: Vec<f32> = if crate::optim::is_run_state(&name) {
                vec![0.0; n]
            } else if name.ends_with("running_var") {
                vec![1.0; n]
            } else if name.ends_with("running_mean") {
                vec![0.0; n]
            } else if shape.len() == 4 {
                let fan_out = shape[0] * shape[2] * shape[3];
                let std = (2.0 / fan_out as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            } else if shape.len() == 2 {
                let bound = 1.0 / (shape[1] as f64).sqrt();
                (0..n).map(|_| rng.range(-bound, bound) as f32).collect()
            } else if Self::is_bn(&g, &name) {
                vec![if name.ends_with(".weight") { 1.0 } else { 0.0 }; n]
            } else {
                // A linear layer's bias: uniform(+-1/sqrt(fan_in)) of its weight.
                let weight = name.trim_end_matches(".bias").to_string() + ".weight";
                let fan_in = g.by_name(&weight).map(|w| g.shape(w)[1]).unwrap_or(n);
                let bound = 1.0 / (fan_in as f64).sqrt();
                (0..n).map(|_| rng.range(-bound, bound) as f32).collect()
            };
            self.plan.write(t, &data)?;
        }
        Ok(())
    }

    fn is_bn(g: &Graph, name: &str) -> bool {
        let base = name.rsplit_once('.').map_or(name, |(b, _)| b);
        g.by_name(&format!("{base}.running_mean")).is_some()
    }

    /// Model parameters and batch-norm buffers from a state dict (torchvision / swav names);
    /// momentum and queues are optimizer state and stay as they are unless present.
    pub fn load_state(&self, state: &std::collections::BTreeMap<String, crate::io::NamedTensor>) -> Result<()> {
        let g = self.graph();
        for (name, t) in g.named(Kind::Parameter).into_iter().chain(g.named(Kind::Buffer)) {
            let optional = crate::optim::is_run_state(&name);
            match state.get(&name) {
                Some(v) if v.shape == g.shape(t) => self.plan.write(t, &v.data)?,
                Some(v) => {
                    return Err(Error::Invalid(format!(
                        "'{name}' has shape {:?} in the state, the model needs {:?}",
                        v.shape,
                        g.shape(t)
                    )))
                }
                None if optional => {}
                None => return Err(Error::Invalid(format!("the state has no '{name}'"))),
            }
        }
        Ok(())
    }

    /// This rank's objective (its share of the queue).
    pub fn swav(&self) -> crate::swav::SwavConfig {
        self.cfg.swav_for(self.collective.world())
    }

    /// The learning rate of the current iteration.
    pub fn lr(&self) -> f64 {
        self.schedule.at(self.iteration)
    }

    pub fn epoch(&self) -> usize {
        self.iteration / self.iters_per_epoch
    }

    /// Whether Sinkhorn uses the queue this step: the queue starts at `epoch_queue_starts`
    /// and is used once it has been filled (the official "last row non-zero" rule).
    pub fn queue_in_use(&self) -> bool {
        if !self.ids.has_queue {
            return false;
        }
        let start = self.cfg.epoch_queue_starts * self.iters_per_epoch;
        let lq = self.swav().effective_queue_length();
        self.iteration >= start && (self.iteration - start) * self.cfg.batch_size >= lq
    }

    /// Writes the crops (each [batch, 3, size, size], in config order) and the per-step
    /// scalars, and submits the whole step. Returns at once; `read_loss` waits for it.
    pub fn submit(&mut self, crops: &[&[f32]]) -> Result<()> {
        if crops.len() != self.ids.crops.len() {
            return Err(Error::Invalid(format!("the step needs {} crops, got {}", self.ids.crops.len(), crops.len())));
        }
        for (t, data) in self.ids.crops.iter().zip(crops) {
            self.plan.write(*t, data)?;
        }
        let state = self.scaler.step_state(self.lr(), self.iteration, self.cfg.freeze_prototypes_niters).to_values();
        self.plan.write(self.ids.optimizer_state, &state)?;
        if let Some(seed) = self.ids.loss_scale {
            #[cfg(feature = "test-hooks")]
            let overflow = std::mem::take(&mut self.overflow_next);
            #[cfg(not(feature = "test-hooks"))]
            let overflow = false;
            self.plan.write(seed, &[if overflow { f32::INFINITY } else { self.scaler.scale }])?;
        }
        if self.ids.has_queue {
            let active = if self.queue_in_use() { self.swav().effective_queue_length() as f32 } else { 0.0 };
            self.plan.write(self.ids.queue_active, &[active])?;
        }
        self.plan.step()?;
        self.iteration += 1;
        Ok(())
    }

    /// The loss of the last submitted step (waits for it); an error if the device was lost
    /// or reported an error during it. With loss scaling, read with the step's found_inf in
    /// one read: whether it was skipped, and the next step's scale (`LossScaler::update`).
    pub async fn read_loss(&mut self) -> Result<f32> {
        let gpu = self.plan.gpu().clone();
        gpu.health()?;
        let read = match self.ids.found_inf {
            Some(f) => self.plan.read_many(&[self.ids.loss, f]).await,
            None => self.plan.read(self.ids.loss).await,
        };
        gpu.health()?;
        let read = read?;
        if let Some(&found_inf) = read.get(1) {
            let unfrozen = self.iteration > self.cfg.freeze_prototypes_niters;
            self.scaler.update(!found_inf.is_finite(), unfrozen)?;
        }
        Ok(read[0])
    }

    /// Testing aid: the next step is seeded with +inf, so that its gradients overflow and it
    /// is skipped (a loss scale that is too large, on demand). Needs loss scaling.
    #[cfg(feature = "test-hooks")]
    pub fn inject_overflow(&mut self) -> Result<()> {
        if self.ids.loss_scale.is_none() {
            return Err(Error::Invalid("an injected overflow needs loss scaling (--loss-scale)".into()));
        }
        self.overflow_next = true;
        Ok(())
    }

    /// Submit and wait for the loss (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&mut self, crops: &[&[f32]]) -> Result<f32> {
        self.submit(crops)?;
        pollster::block_on(self.read_loss())
    }

    /// Every parameter and buffer (momentum and queues included) by name.
    pub async fn state(&self) -> Result<std::collections::BTreeMap<String, crate::io::NamedTensor>> {
        let mut out = std::collections::BTreeMap::new();
        let g = self.graph();
        for kind in [Kind::Parameter, Kind::Buffer] {
            for (name, t) in g.named(kind) {
                let data = self.plan.read(t).await?;
                out.insert(name, crate::io::NamedTensor { shape: g.shape(t).to_vec(), data });
            }
        }
        Ok(out)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn state_blocking(&self) -> Result<std::collections::BTreeMap<String, crate::io::NamedTensor>> {
        pollster::block_on(self.state())
    }
}
