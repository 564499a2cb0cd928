//! Graph -> execution plan. Memory planning (no GPU needed): activations are placed in shared
//! slots by liveness, so a buffer is recycled once the last reader of its tensor has run;
//! inputs, parameters, buffers, constants and kept tensors persist. Compiling on a device
//! creates every buffer, pipeline and bind group once; a step only records and submits.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::{Graph, Kind, Op, TensorId};
use crate::dist::{Collective, Solo};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Exchange, Gpu, Step, Tensor};
use crate::ops::batchnorm::{BatchNormBackwardTensors, BatchNormOps};
use crate::ops::elementwise::ElementwiseOps;
use crate::ops::optim::OptimOps;

/// Where every activation lives.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Size in bytes of each shared slot.
    pub slots: Vec<u64>,
    /// tensor index -> slot, for transient activations.
    pub slot_of: Vec<Option<usize>>,
    /// Inputs, parameters, buffers, constants and kept tensors.
    pub persistent_bytes: u64,
    /// Sum of the slots: the activation memory with reuse.
    pub activation_bytes_with_reuse: u64,
    /// Every transient activation in its own buffer.
    pub activation_bytes_without_reuse: u64,
}

impl MemoryPlan {
    /// Liveness-based placement: walk the ops in order; an op's fresh outputs take the
    /// best-fitting free slot (or grow the largest free one, or open a new one); a tensor's
    /// slot is freed after the last op that reads it. Outputs never share a slot with the
    /// op's own inputs, since inputs are freed only after the op.
    pub fn new(g: &Graph) -> MemoryPlan {
        let n = g.tensors.len();
        let mut last_use = vec![None::<usize>; n];
        let mut first_def = vec![None::<usize>; n];
        for (i, op) in g.ops.iter().enumerate() {
            for t in op.inputs() {
                last_use[t.0] = Some(i);
            }
            for t in op.outputs() {
                first_def[t.0].get_or_insert(i);
                last_use[t.0] = Some(last_use[t.0].map_or(i, |u| u.max(i)));
            }
        }
        let transient = |t: usize| !g.tensors[t].persistent();
        let mut slots: Vec<u64> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut slot_of = vec![None; n];
        let mut frees_at: Vec<Vec<usize>> = vec![Vec::new(); g.ops.len()];
        for (t, last) in last_use.iter().enumerate() {
            if let (true, Some(u)) = (transient(t), *last) {
                frees_at[u].push(t);
            }
        }
        for (i, op) in g.ops.iter().enumerate() {
            for t in op.outputs() {
                let t = t.0;
                if !transient(t) || first_def[t] != Some(i) || slot_of[t].is_some() {
                    continue;
                }
                let need = g.tensors[t].bytes();
                let best_fit = free
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| slots[s] >= need)
                    .min_by_key(|(_, &s)| slots[s])
                    .map(|(k, _)| k);
                let pick = best_fit.or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| slots[s]).map(|(k, _)| k));
                let slot = match pick {
                    Some(k) => {
                        let s = free.swap_remove(k);
                        slots[s] = slots[s].max(need);
                        s
                    }
                    None => {
                        slots.push(need);
                        slots.len() - 1
                    }
                };
                slot_of[t] = Some(slot);
            }
            for &t in &frees_at[i] {
                if let Some(s) = slot_of[t] {
                    free.push(s);
                }
            }
        }
        let persistent_bytes = g.tensors.iter().filter(|t| t.persistent()).map(|t| t.bytes()).sum();
        let activation_bytes_without_reuse =
            (0..n).filter(|&t| transient(t) && first_def[t].is_some()).map(|t| g.tensors[t].bytes()).sum();
        MemoryPlan {
            activation_bytes_with_reuse: slots.iter().sum(),
            slots,
            slot_of,
            persistent_bytes,
            activation_bytes_without_reuse,
        }
    }
}

/// What a compiled plan costs.
#[derive(Clone, Debug)]
pub struct PlanReport {
    pub ops: usize,
    pub dispatches: usize,
    pub persistent_bytes: u64,
    pub activation_bytes_with_reuse: u64,
    pub activation_bytes_without_reuse: u64,
    /// Temporaries owned by dispatches (split-K slabs, reduction partials).
    pub workspace_bytes: u64,
    /// ReLUs folded into the pass before them and ReLU-backwards into the batch-norm
    /// backward after them (`fuse_relu`).
    pub fusions: Fusions,
    /// Bytes a step's ops read and write, each input and output counted once per op: an
    /// estimate of memory traffic (kernels that read a tensor twice are counted once).
    pub op_traffic_bytes: u64,
    /// Device memory by what it holds.
    pub memory: MemoryReport,
}

/// A plan's device memory by what it holds, in the bytes of the buffers it allocates (the
/// pool rounds sizes up to its buckets), all of it held for the plan's life: the peak.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// The trained parameters (f32 master copies).
    pub weights: u64,
    /// Momentum / Adam moments (the optimizer's per-parameter state).
    pub optimizer_state: u64,
    /// The parameters' gradients (kept for the update and the gradient exchange).
    pub gradients: u64,
    /// The activations of a step and their gradients, in shared slots.
    pub activations: u64,
    /// Batch-norm statistics, the embedding queue, the inputs (images, targets), constants
    /// and kept outputs.
    pub other: u64,
    /// Temporaries of the kernels (split-K slabs, reduction partials, Sinkhorn's sums).
    pub workspace: u64,
    /// The largest single buffer, and the most one binding may hold on this device.
    pub largest_buffer: u64,
    pub binding_limit: u64,
}

impl MemoryReport {
    fn of(gpu: &Gpu, graph: &Graph, tensors: &[Option<Tensor>], slots: &[Tensor], dispatches: &[Dispatch]) -> Self {
        let mut r = MemoryReport { binding_limit: gpu.max_binding_bytes(), ..Default::default() };
        let gradients: HashSet<TensorId> = graph.grads.values().copied().collect();
        // The optimizer's state: what its update ops keep per parameter.
        let optimizer_state: HashSet<TensorId> = graph
            .ops
            .iter()
            .flat_map(|op| match op {
                Op::Optim(OptimOps::SgdStep { t, .. }) => vec![t.momentum],
                Op::Optim(OptimOps::AdamStep { t, .. }) => vec![t.m1, t.m2],
                _ => vec![],
            })
            .collect();
        for (i, (info, t)) in graph.tensors.iter().zip(tensors).enumerate() {
            let Some(t) = t.as_ref().filter(|_| info.persistent()) else { continue };
            let bytes = t.capacity();
            r.largest_buffer = r.largest_buffer.max(bytes);
            let id = TensorId(i);
            *match info.kind {
                Kind::Parameter => &mut r.weights,
                _ if optimizer_state.contains(&id) => &mut r.optimizer_state,
                _ if gradients.contains(&id) => &mut r.gradients,
                _ => &mut r.other,
            } += bytes;
        }
        for slot in slots {
            r.activations += slot.capacity();
            r.largest_buffer = r.largest_buffer.max(slot.capacity());
        }
        r.workspace = dispatches.iter().map(|d| d.owned_capacity()).sum();
        r
    }

    /// Everything the plan allocates.
    pub fn peak(&self) -> u64 {
        self.weights + self.optimizer_state + self.gradients + self.activations + self.other + self.workspace
    }
}

impl std::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let rows = [
            ("weights", self.weights),
            ("optimizer state", self.optimizer_state),
            ("gradients", self.gradients),
            ("activations and their gradients", self.activations),
            ("batch-norm statistics, queue, inputs", self.other),
            ("workspace", self.workspace),
        ];
        writeln!(f, "device memory by kind:")?;
        for (what, bytes) in rows {
            writeln!(f, "  {what:<38} {:>10.1} MiB", mib(bytes))?;
        }
        if self.largest_buffer > self.binding_limit {
            writeln!(
                f,
                "  largest buffer {:.1} MiB is over this device's binding limit of {:.1} MiB (--full-limits lifts it where the adapter allows)",
                mib(self.largest_buffer),
                mib(self.binding_limit)
            )?;
        }
        write!(f, "peak device memory: {:.2} GiB", self.peak() as f64 / (1u64 << 30) as f64)
    }
}

/// What `fuse_relu` folded away: forward ReLUs (into a batch-norm or residual add) and
/// ReLU-backwards (into the batch-norm backward that reads their output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fusions {
    pub relu: usize,
    pub relu_backward: usize,
}

impl Fusions {
    pub fn total(&self) -> usize {
        self.relu + self.relu_backward
    }
}

impl std::fmt::Display for PlanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "{} ops, {} dispatches ({} ReLUs and {} ReLU-backwards fused); ops read and write {:.1} MiB; persistent {:.2} MiB; activations {:.2} MiB with reuse vs {:.2} MiB without ({:.0} %); workspace {:.2} MiB",
            self.ops,
            self.dispatches,
            self.fusions.relu,
            self.fusions.relu_backward,
            mib(self.op_traffic_bytes),
            mib(self.persistent_bytes),
            mib(self.activation_bytes_with_reuse),
            mib(self.activation_bytes_without_reuse),
            100.0 * self.activation_bytes_with_reuse as f64 / self.activation_bytes_without_reuse.max(1) as f64,
            mib(self.workspace_bytes)
        )
    }
}

impl Graph {
    /// See `PlanReport::op_traffic_bytes`.
    pub fn op_traffic_bytes(&self) -> u64 {
        let bytes = |ts: Vec<TensorId>| ts.iter().map(|t| self.info(*t).bytes()).sum::<u64>();
        self.ops.iter().map(|op| bytes(op.inputs()) + bytes(op.outputs())).sum()
    }
}

/// Whether plans fuse ReLUs (`fuse_relu`): yes unless `SWAV_WGPU_NO_FUSION=1` (for
/// profiling before and after).
pub fn fusion_enabled() -> bool {
    std::env::var_os("SWAV_WGPU_NO_FUSION").is_none_or(|v| v == "0")
}

/// Folds each ReLU that directly follows a batch-norm or an add (the residual add at a block's
/// end) into that op's pass: it writes relu(Y) into the ReLU's output and the ReLU op goes, so
/// Y is never stored (one pass and one tensor fewer). Only where Y is transient and read by nothing but
/// that ReLU and ReLU-backward ops, which then read relu(Y) instead: relu(Y) > 0 exactly where
/// Y > 0, so the gradient mask, and every value, is bit for bit what the unfused graph gives.
///
/// Then each ReLU-backward whose output only a batch-norm backward reads (the gradient of a
/// fused BN+ReLU) is folded into that op, which masks the incoming gradient as it reads it
/// and stores it over the incoming one (read by nothing else): one pass and one tensor fewer.
/// (After a residual add the masked gradient goes to two branches, so that one stays.)
pub fn fuse_relu(g: &Graph) -> (Graph, Fusions) {
    let mut g = g.clone();
    // Per tensor: how many op inputs read it, and how many of those are ReLU-backward masks.
    let mut readers = vec![0usize; g.tensors.len()];
    let mut mask_reads = vec![0usize; g.tensors.len()];
    for op in &g.ops {
        for t in op.inputs() {
            readers[t.0] += 1;
        }
        if let Op::Elementwise(ElementwiseOps::ReluBackward { x, dy, .. }) = op {
            if x != dy {
                mask_reads[x.0] += 1;
            }
        }
    }
    let mut remove = vec![false; g.ops.len()];
    let mut renames: Vec<(TensorId, TensorId)> = Vec::new();
    for i in 0..g.ops.len().saturating_sub(1) {
        let (y, already) = match &g.ops[i] {
            Op::BatchNorm(BatchNormOps::Forward { t, s, .. }) => (t.y, s.relu),
            Op::Elementwise(ElementwiseOps::Add { c, relu, .. }) => (*c, *relu),
            _ => continue,
        };
        let Op::Elementwise(ElementwiseOps::Relu { x: rx, y: z }) = &g.ops[i + 1] else { continue };
        if *rx != y || g.tensors[y.0].persistent() || already {
            continue;
        }
        let z = *z;
        if readers[y.0] != 1 + mask_reads[y.0] {
            continue;
        }
        match &mut g.ops[i] {
            Op::BatchNorm(BatchNormOps::Forward { t, s, .. }) => {
                t.y = z;
                s.relu = true;
            }
            Op::Elementwise(ElementwiseOps::Add { c, relu, .. }) => {
                *c = z;
                *relu = true;
            }
            _ => unreachable!("matched above"),
        }
        remove[i + 1] = true;
        renames.push((y, z));
    }
    for op in &mut g.ops {
        if let Op::Elementwise(ElementwiseOps::ReluBackward { x, .. }) = op {
            if let Some(&(_, z)) = renames.iter().find(|(y, _)| y == x) {
                *x = z;
            }
        }
    }
    g.forward_len -= remove[..g.forward_len].iter().filter(|r| **r).count();
    let mut keep = remove.iter().map(|r| !r);
    g.ops.retain(|_| keep.next().expect("one flag per op"));
    let relu_backward = fuse_relu_backward(&mut g);
    (g, Fusions { relu: renames.len(), relu_backward })
}

/// The buffers of a compiled plan: the activation slots (byte buffers, each named by the
/// largest tensor it holds) and, per tensor, its own buffer or a typed view into its slot.
fn allocate(gpu: &Gpu, graph: &Graph, memory: &MemoryPlan) -> Result<(Vec<Tensor>, Vec<Option<Tensor>>)> {
    // A slot is named by the largest tensor it holds, so that a tensor too large for the
    // device is reported as what it is ("layer3.1.conv2 output [64, 256, 8, 8] f32").
    let slots: Vec<Tensor> = memory
        .slots
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let held: Vec<usize> = (0..graph.tensors.len()).filter(|&t| memory.slot_of[t] == Some(i)).collect();
            let largest = held.iter().copied().max_by_key(|&t| graph.tensors[t].bytes());
            let name = match largest {
                Some(t) => {
                    format!("{} (activation slot {i}, shared by {} tensors)", graph.describe(TensorId(t)), held.len())
                }
                None => format!("activation slot {i}"),
            };
            gpu.tensor_exact(&name, &[b as usize], crate::gpu::DType::U8)
        })
        .collect::<Result<_>>()?;
    let mut tensors: Vec<Option<Tensor>> = Vec::with_capacity(graph.tensors.len());
    for (i, info) in graph.tensors.iter().enumerate() {
        let t = if info.persistent() {
            Some(gpu.tensor_of(&info.name, &info.shape, info.dtype)?)
        } else if let Some(s) = memory.slot_of[i] {
            Some(slots[s].view_as(&info.shape, info.dtype)?)
        } else {
            None // never written nor read
        };
        tensors.push(t);
    }
    Ok((slots, tensors))
}

/// The exchanges of a plan, each with the number of dispatches that run before it.
type Exchanges = Vec<(usize, Exchange)>;

/// Every op lowered in order: the dispatches and the exchanges.
fn lower_all(gpu: &Gpu, graph: &Graph, tensors: &[Option<Tensor>]) -> Result<(Vec<Dispatch>, Exchanges)> {
    let mut dispatches = Vec::new();
    let mut exchanges = Vec::new();
    for op in &graph.ops {
        for step in super::op::lower(gpu, graph, tensors, op)? {
            match step {
                Step::Run(d) => dispatches.push(d),
                Step::Exchange(x) => exchanges.push((dispatches.len(), x)),
            }
        }
    }
    Ok((dispatches, exchanges))
}

/// The backward half of `fuse_relu`; returns how many ReLU-backwards it folded.
fn fuse_relu_backward(g: &mut Graph) -> usize {
    let mut readers = vec![0usize; g.tensors.len()];
    let mut writers = vec![0usize; g.tensors.len()];
    for op in &g.ops {
        for t in op.inputs() {
            readers[t.0] += 1;
        }
        for t in op.outputs() {
            writers[t.0] += 1;
        }
    }
    let mut removed = std::collections::BTreeSet::new();
    for i in g.forward_len..g.ops.len() {
        let Op::Elementwise(ElementwiseOps::ReluBackward { x: mask, dy: grad, dx: masked }) = g.ops[i] else {
            continue;
        };
        // The batch-norm backward overwrites `grad` with the masked gradient, so nothing else
        // may read it; and the masked gradient must have no other reader or writer.
        let sole = |t: TensorId| !g.tensors[t.0].persistent() && readers[t.0] == 1;
        if !sole(grad) || !sole(masked) || writers[masked.0] != 1 || masked == grad || mask == grad {
            continue;
        }
        // The one reader, later in the backward pass.
        let Some(j) = (i + 1..g.ops.len()).find(|&j| g.ops[j].inputs().contains(&masked)) else { continue };
        if let Op::BatchNorm(BatchNormOps::Backward {
            t: BatchNormBackwardTensors { dy, relu_mask: relu_mask @ None, x, .. },
            ..
        }) = &mut g.ops[j]
        {
            if *dy == masked && *x != masked {
                *dy = grad;
                *relu_mask = Some(mask);
                removed.insert(i);
            }
        }
    }
    let mut index = 0;
    g.ops.retain(|_| {
        index += 1;
        !removed.contains(&(index - 1))
    });
    removed.len()
}

/// A compiled graph on one device: every buffer, pipeline and bind group exists; `step`
/// records the whole plan into one command buffer and submits it.
pub struct Plan {
    gpu: Arc<Gpu>,
    graph: Graph,
    tensors: Vec<Option<Tensor>>,
    dispatches: Vec<Dispatch>,
    /// (n, exchange): the exchange runs once the first n dispatches have (data-parallel
    /// graphs only; `step` then submits the plan in segments).
    exchanges: Vec<(usize, Exchange)>,
    collective: Arc<dyn Collective>,
    comm: Mutex<CommStats>,
    _slots: Vec<Tensor>,
    pub report: PlanReport,
}

/// What a plan's exchanges have cost so far (all steps together).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    pub exchanges: u64,
    /// Bytes this rank sent into all-reduces.
    pub bytes: u64,
    /// Seconds in the all-reduces themselves (waiting for the other ranks included).
    pub seconds: f64,
    /// Seconds reading the exchanged tensors back (waiting for the GPU's segment included).
    pub readback_seconds: f64,
}

impl Plan {
    /// Compiles with the ReLU fusion (`fuse_relu`) unless `SWAV_WGPU_NO_FUSION=1`.
    pub fn compile(graph: &Graph, gpu: Arc<Gpu>) -> Result<Plan> {
        Plan::compile_with(graph, gpu, fusion_enabled())
    }

    pub fn compile_with(graph: &Graph, gpu: Arc<Gpu>, fuse: bool) -> Result<Plan> {
        Plan::compile_in(graph, gpu, fuse, Arc::new(Solo))
    }

    /// Compiles for one rank of `collective`'s world (the graph must be built for its size).
    pub fn compile_in(graph: &Graph, gpu: Arc<Gpu>, fuse: bool, collective: Arc<dyn Collective>) -> Result<Plan> {
        if graph.world.max(1) != collective.world() {
            return Err(Error::Invalid(format!(
                "the graph is built for a world of {} ranks, this plan runs in {}",
                graph.world.max(1),
                collective.describe()
            )));
        }
        let (graph, fusions) = if fuse { fuse_relu(graph) } else { (graph.clone(), Fusions::default()) };
        let placement = MemoryPlan::new(&graph);
        let (slots, tensors) = allocate(&gpu, &graph, &placement)?;
        for (t, data) in &graph.constants {
            if let Some(tensor) = &tensors[t.0] {
                gpu.write(tensor, data)?;
            }
        }
        let (dispatches, exchanges) = lower_all(&gpu, &graph, &tensors)?;
        if cfg!(target_arch = "wasm32") && !exchanges.is_empty() {
            return Err(Error::Invalid("data-parallel plans (exchanges between ranks) are native only".into()));
        }
        let workspace: u64 = dispatches.iter().map(|d| d.owned_bytes()).sum();
        let memory = MemoryReport::of(&gpu, &graph, &tensors, &slots, &dispatches);
        let report = PlanReport {
            ops: graph.ops.len(),
            dispatches: dispatches.len(),
            persistent_bytes: placement.persistent_bytes,
            activation_bytes_with_reuse: placement.activation_bytes_with_reuse,
            activation_bytes_without_reuse: placement.activation_bytes_without_reuse,
            workspace_bytes: workspace,
            fusions,
            op_traffic_bytes: graph.op_traffic_bytes(),
            memory,
        };
        Ok(Plan {
            gpu,
            graph,
            tensors,
            dispatches,
            exchanges,
            collective,
            comm: Mutex::new(CommStats::default()),
            _slots: slots,
            report,
        })
    }

    /// The report of the plan `graph` would compile to on `gpu` (as `compile` would, for one
    /// process), without its memory: lowered on a planning copy of the device (kernel
    /// choices untuned), so a configuration too large for the device can still be measured.
    pub fn measure(graph: &Graph, gpu: &Gpu) -> Result<PlanReport> {
        let single = Graph { world: 1, ..graph.clone() };
        Ok(Plan::compile_with(&single, gpu.planning_copy(), fusion_enabled())?.report)
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    pub fn tensor(&self, t: TensorId) -> Result<&Tensor> {
        self.tensors
            .get(t.0)
            .and_then(|x| x.as_ref())
            .ok_or_else(|| Error::Invalid(format!("tensor {t:?} is not materialised in this plan")))
    }

    fn named(&self, name: &str) -> Result<TensorId> {
        self.graph.by_name(name).ok_or_else(|| Error::Invalid(format!("the graph has no tensor named '{name}'")))
    }

    /// Writes a persistent tensor (input, parameter, buffer) from the CPU.
    pub fn write(&self, t: TensorId, data: &[f32]) -> Result<()> {
        let info = self.graph.info(t);
        if !info.persistent() {
            return Err(Error::Invalid(format!(
                "'{}' is a transient activation; only persistent tensors can be written",
                info.name
            )));
        }
        self.gpu.write(self.tensor(t)?, data)
    }

    pub fn write_named(&self, name: &str, data: &[f32]) -> Result<()> {
        self.write(self.named(name)?, data)
    }

    /// Writes every parameter and buffer of the graph from a state dict (by name). Names the
    /// first one that is missing or has the wrong shape.
    pub fn load_state(&self, state: &std::collections::BTreeMap<String, crate::io::NamedTensor>) -> Result<()> {
        for kind in [super::Kind::Parameter, super::Kind::Buffer] {
            for (name, t) in self.graph.named(kind) {
                let v = state.get(&name).ok_or_else(|| Error::Invalid(format!("the state has no '{name}'")))?;
                let want = &self.graph.info(t).shape;
                if v.data.len() != self.graph.info(t).len() {
                    return Err(Error::Invalid(format!(
                        "'{name}' has shape {:?} in the state but {want:?} in the model",
                        v.shape
                    )));
                }
                self.write(t, &v.data)?;
            }
        }
        Ok(())
    }

    /// Records every dispatch into one command buffer and submits it. Returns at once; reads
    /// queue behind it. A data-parallel plan is submitted in segments and waits at each
    /// exchange for the GPU and the other ranks; an exchange that fails (a rank died) is an
    /// error.
    pub fn step(&self) -> Result<()> {
        let mut done = 0;
        for (at, x) in &self.exchanges {
            self.gpu.run(&self.dispatches[done..*at]);
            done = *at;
            self.exchange(x)?;
        }
        self.gpu.run(&self.dispatches[done..]);
        Ok(())
    }

    #[cfg(target_arch = "wasm32")]
    fn exchange(&self, x: &Exchange) -> Result<()> {
        Err(Error::Invalid(format!("exchange '{}': data-parallel plans are native only", x.label)))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn exchange(&self, x: &Exchange) -> Result<()> {
        let time = self.gpu.exchange(x, self.collective.as_ref())?;
        let mut c = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        c.exchanges += 1;
        c.bytes += x.bytes();
        c.seconds += time.reduce;
        c.readback_seconds += time.readback;
        Ok(())
    }

    /// The exchanges' cost so far.
    pub fn comm_stats(&self) -> CommStats {
        *self.comm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Exchanges per step (0 in a plan for one process).
    pub fn exchange_count(&self) -> usize {
        self.exchanges.len()
    }

    pub fn collective(&self) -> &Arc<dyn Collective> {
        &self.collective
    }

    /// Runs every dispatch alone and returns (label, seconds), in plan order: where a step's
    /// time goes. Each dispatch is its own timestamped pass where the device has timestamps,
    /// else it is run and waited for. Leaves the state as after one step.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile_dispatches(&self) -> Result<Vec<(String, f64)>> {
        let groups: Vec<&[Dispatch]> = self.dispatches.iter().map(std::slice::from_ref).collect();
        let (times, _) = self.gpu.times(&groups)?;
        Ok(self.dispatches.iter().map(|d| d.label.clone()).zip(times).collect())
    }

    /// Reads a persistent tensor (kept outputs, gradients, parameters).
    pub async fn read(&self, t: TensorId) -> Result<Vec<f32>> {
        self.read_many(&[t]).await
    }

    /// Reads several persistent tensors with one map: their values one after another.
    pub async fn read_many(&self, ts: &[TensorId]) -> Result<Vec<f32>> {
        let mut tensors = Vec::with_capacity(ts.len());
        for &t in ts {
            if !self.graph.info(t).persistent() {
                return Err(Error::Invalid(format!(
                    "'{}' is transient (its buffer is reused); mark it with Graph::keep to read it",
                    self.graph.info(t).name
                )));
            }
            tensors.push(self.tensor(t)?);
        }
        self.gpu.read_many(&tensors).await
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_blocking(&self, t: TensorId) -> Result<Vec<f32>> {
        pollster::block_on(self.read(t))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_named(&self, name: &str) -> Result<Vec<f32>> {
        self.read_blocking(self.named(name)?)
    }
}
