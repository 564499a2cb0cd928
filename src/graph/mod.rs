//! The static graph: tensors and ops recorded once, differentiated once (`backward`), then
//! either compiled into a GPU plan that is replayed every step (`plan`) or interpreted on the
//! CPU with the f64 references (`cpu`).
//!
//! Tensors are single-assignment: every op writes new tensors, except batch-norm, which also
//! updates its running statistics (persistent buffers) in place, in op order.
pub mod autodiff;
pub mod cpu;
pub mod op;
pub mod plan;

pub use crate::ops::rows::RowKind;
pub use crate::ops::rules::{Io, TensorId};
pub use op::Op;

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::ops::batchnorm::{BatchNormOps, BatchNormShape, BatchNormTensors};
use crate::ops::conv::{Conv2dShape, ConvOps};
use crate::ops::elementwise::ElementwiseOps;
use crate::ops::loss::LossOps;
use crate::ops::matmul::{MatmulOps, MatmulShape};
use crate::ops::pool::{PoolOps, PoolShape};
use crate::ops::reduce::{ReduceOp, ReduceOps};
use crate::ops::rows::RowsOps;
use crate::ops::rules::Recorder;
use crate::ops::sinkhorn::{SinkhornOps, SinkhornShape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Written from the CPU before each step (images, targets).
    Input,
    /// Trained: gets a gradient from `backward`.
    Parameter,
    /// Persistent state that is not trained (batch-norm running statistics).
    Buffer,
    /// Fixed data uploaded once at compile time.
    Constant,
    /// Produced by an op; recycled once its last reader has run unless `keep` is set.
    Activation,
}

#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: Kind,
    /// Gradients flow to it (parameters, and inputs that ask for it).
    pub requires_grad: bool,
    /// Persist after the step so it can be read (losses, gradients, named outputs).
    pub keep: bool,
    /// Element type: f32, or f16 for activations (and their gradients) under f16 storage.
    pub dtype: crate::gpu::DType,
}

impl TensorInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> u64 {
        self.dtype.bytes(self.len())
    }
    pub fn persistent(&self) -> bool {
        self.keep || self.kind != Kind::Activation
    }
}

/// A recorded model. Build it with the methods below (each checks shapes and returns the new
/// tensor), call `backward` once, then `plan::Plan::compile` or `cpu::run`.
#[derive(Default, Clone)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    pub ops: Vec<Op>,
    pub constants: HashMap<TensorId, Vec<f32>>,
    /// parameter (or input) -> its gradient, filled by `backward`.
    pub grads: BTreeMap<TensorId, TensorId>,
    /// every tensor that got a gradient -> that gradient (intermediate ones are transient
    /// unless kept).
    pub grad_of: HashMap<TensorId, TensorId>,
    /// Number of forward ops (the backward ops follow them).
    pub forward_len: usize,
    /// Ranks of the data-parallel job the graph is built for (0 or 1: one process): Sinkhorn
    /// runs over all of them, and batch-norm too with `sync_bn`. Set before adding ops.
    pub world: usize,
    pub sync_bn: bool,
    names: HashMap<String, TensorId>,
}

fn shape_error<T>(op: &'static str, detail: String) -> Result<T> {
    Err(Error::Shape { op, detail })
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn info(&self, t: TensorId) -> &TensorInfo {
        &self.tensors[t.0]
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.tensors[t.0].shape
    }

    /// What a tensor is, for messages: persistent ones by name; an activation as the output
    /// of the layer that made it (named after that op's parameter, or the nearest one before
    /// it), e.g. "layer3.1.conv2 output [64, 256, 8, 8] f32" or "relu after layer3.1.bn2 [...]".
    pub fn describe(&self, t: TensorId) -> String {
        let info = self.info(t);
        let shape = format!("{:?} {}", info.shape, info.dtype);
        if info.persistent() {
            return format!("{} {shape}", info.name);
        }
        let producer = |t: TensorId| self.ops.iter().find(|op| op.outputs().contains(&t));
        let layer_of = |op: &Op| {
            op.inputs().into_iter().find(|i| self.info(*i).kind == Kind::Parameter).map(|p| {
                let n = &self.info(p).name;
                n.rsplit_once('.').map_or(n.clone(), |(base, _)| base.to_string())
            })
        };
        let Some(op) = producer(t) else { return format!("{} {shape}", info.name) };
        if let Some(layer) = layer_of(op) {
            return format!("{layer} output {shape}");
        }
        // No parameter of its own (ReLU, add, pool...): the nearest layer before it.
        let mut at = op;
        for _ in 0..16 {
            let Some(prev) = at.inputs().into_iter().find_map(producer) else { break };
            if let Some(layer) = layer_of(prev) {
                return format!("{} after {layer} {shape}", info.name);
            }
            at = prev;
        }
        format!("{} {shape}", info.name)
    }

    /// The tensor registered under `name` (inputs, parameters, buffers, named outputs).
    pub fn by_name(&self, name: &str) -> Option<TensorId> {
        self.names.get(name).copied()
    }

    /// Named tensors of a kind, sorted by name.
    pub fn named(&self, kind: Kind) -> Vec<(String, TensorId)> {
        let mut v: Vec<(String, TensorId)> =
            self.names.iter().filter(|(_, t)| self.info(**t).kind == kind).map(|(n, t)| (n.clone(), *t)).collect();
        v.sort();
        v
    }

    fn add_tensor(&mut self, name: &str, shape: &[usize], kind: Kind, requires_grad: bool) -> TensorId {
        let id = TensorId(self.tensors.len());
        self.tensors.push(TensorInfo {
            name: name.to_string(),
            shape: shape.to_vec(),
            kind,
            requires_grad,
            keep: false,
            dtype: crate::gpu::DType::F32,
        });
        id
    }

    fn named_tensor(&mut self, name: &str, shape: &[usize], kind: Kind, requires_grad: bool) -> Result<TensorId> {
        if let Some(&t) = self.names.get(name) {
            let info = self.info(t);
            if info.shape != shape || info.kind != kind {
                return Err(Error::Invalid(format!(
                    "tensor '{name}' already exists as {:?} {:?}, asked for {kind:?} {shape:?}",
                    info.kind, info.shape
                )));
            }
            return Ok(t);
        }
        let t = self.add_tensor(name, shape, kind, requires_grad);
        self.names.insert(name.to_string(), t);
        Ok(t)
    }

    pub fn input(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.named_tensor(name, shape, Kind::Input, false)
    }

    /// An input that gets a gradient (for tests of whole-graph backward).
    pub fn input_with_grad(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.named_tensor(name, shape, Kind::Input, true)
    }

    /// A trained parameter; asking again for the same name returns the same tensor (so two
    /// multi-crop groups share one backbone).
    pub fn parameter(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.named_tensor(name, shape, Kind::Parameter, true)
    }

    pub fn buffer(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.named_tensor(name, shape, Kind::Buffer, false)
    }

    pub fn constant(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<TensorId> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return shape_error("constant", format!("'{name}' shape {shape:?} with {} values", data.len()));
        }
        let t = self.add_tensor(name, shape, Kind::Constant, false);
        self.constants.insert(t, data);
        Ok(t)
    }

    /// Marks a tensor to persist after each step and registers it under `name` for reading.
    pub fn keep(&mut self, t: TensorId, name: &str) {
        self.tensors[t.0].keep = true;
        self.names.entry(name.to_string()).or_insert(t);
    }

    /// A transient tensor outside autograd (norms, workspaces).
    pub(crate) fn scratch(&mut self, name: &str, shape: &[usize]) -> TensorId {
        self.add_tensor(name, shape, Kind::Activation, false)
    }

    /// An op's output: stored like its first input (f16 activations stay f16 through the
    /// ops that have f16 kernels; the others refuse them when the plan is compiled).
    fn activation(&mut self, name: &str, shape: &[usize], inputs: &[TensorId]) -> TensorId {
        let requires_grad = inputs.iter().any(|t| self.info(*t).requires_grad);
        let t = self.add_tensor(name, shape, Kind::Activation, requires_grad);
        if let Some(first) = inputs.first() {
            self.tensors[t.0].dtype = self.tensors[first.0].dtype;
        }
        t
    }

    pub(crate) fn push(&mut self, op: impl Into<Op>) {
        self.record(op.into());
    }

    // ---- forward ops (the families' own builders go through `Recorder`) ----------------

    /// NCHW convolution, weights [Cout, Cin, KH, KW], no bias.
    pub fn conv2d(&mut self, x: TensorId, w: TensorId, stride: usize, pad: usize) -> Result<TensorId> {
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        if xs.len() != 4 || ws.len() != 4 || xs[1] != ws[1] {
            return shape_error("conv2d", format!("input {xs:?} and weight {ws:?} (need [N,C,H,W] and [K,C,kh,kw])"));
        }
        let s = Conv2dShape {
            batch: xs[0],
            cin: xs[1],
            h: xs[2],
            w: xs[3],
            cout: ws[0],
            kh: ws[2],
            kw: ws[3],
            stride: (stride, stride),
            pad: (pad, pad),
        };
        if s.h + 2 * pad < s.kh || s.w + 2 * pad < s.kw || stride == 0 {
            return shape_error("conv2d", format!("kernel does not fit: {s:?}"));
        }
        let (oh, ow) = s.out_hw();
        let y = self.activation("conv", &[s.batch, s.cout, oh, ow], &[x, w]);
        self.push(ConvOps::Forward { x, w, y, s });
        Ok(y)
    }

    /// Batch-norm over [N, C, H, W] (per channel) or [N, C] (per feature).
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &mut self,
        x: TensorId,
        gamma: TensorId,
        beta: TensorId,
        running_mean: TensorId,
        running_var: TensorId,
        training: bool,
        eps: f32,
        momentum: f32,
    ) -> Result<TensorId> {
        let xs = self.shape(x).to_vec();
        let (batch, channels, spatial) = match xs.len() {
            4 => (xs[0], xs[1], xs[2] * xs[3]),
            2 => (xs[0], xs[1], 1),
            _ => return shape_error("batch_norm", format!("input {xs:?} must be [N,C,H,W] or [N,C]")),
        };
        for t in [gamma, beta, running_mean, running_var] {
            if self.info(t).len() != channels {
                return shape_error(
                    "batch_norm",
                    format!("'{}' has {} values for {channels} channels", self.info(t).name, self.info(t).len()),
                );
            }
        }
        if training && batch * spatial < 2 {
            return shape_error("batch_norm", format!("training needs more than one value per channel, input {xs:?}"));
        }
        let s = BatchNormShape {
            batch,
            channels,
            spatial,
            eps,
            momentum,
            relu: false,
            world: if self.sync_bn { self.world.max(1) } else { 1 },
        };
        let stats = if training {
            let m = self.add_tensor("bn.mean", &[channels], Kind::Activation, false);
            let v = self.add_tensor("bn.var", &[channels], Kind::Activation, false);
            Some((m, v))
        } else {
            None
        };
        let y = self.activation("bn", &xs, &[x, gamma, beta]);
        self.push(BatchNormOps::Forward {
            t: BatchNormTensors { x, gamma, beta, running_mean, running_var, y },
            stats,
            s,
        });
        Ok(y)
    }

    pub fn relu(&mut self, x: TensorId) -> Result<TensorId> {
        let shape = self.shape(x).to_vec();
        let y = self.activation("relu", &shape, &[x]);
        self.push(ElementwiseOps::Relu { x, y });
        Ok(y)
    }

    /// alpha * a + beta * b (same shapes).
    pub fn add_scaled(&mut self, a: TensorId, b: TensorId, alpha: f32, beta: f32) -> Result<TensorId> {
        if self.shape(a) != self.shape(b) {
            return shape_error("add", format!("{:?} + {:?}", self.shape(a), self.shape(b)));
        }
        let shape = self.shape(a).to_vec();
        let c = self.activation("add", &shape, &[a, b]);
        self.push(ElementwiseOps::Add { a, b, c, alpha, beta, relu: false });
        Ok(c)
    }

    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.add_scaled(a, b, 1.0, 1.0)
    }

    pub fn scale(&mut self, x: TensorId, alpha: f32) -> Result<TensorId> {
        let shape = self.shape(x).to_vec();
        let y = self.activation("scale", &shape, &[x]);
        self.push(ElementwiseOps::Scale { x, y, alpha });
        Ok(y)
    }

    pub fn max_pool(&mut self, x: TensorId, k: usize, stride: usize, pad: usize) -> Result<TensorId> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 || stride == 0 || 2 * pad > k || xs[2] + 2 * pad < k || xs[3] + 2 * pad < k {
            return shape_error("max_pool", format!("input {xs:?}, window {k}, stride {stride}, pad {pad}"));
        }
        let s = PoolShape::square(xs[0] * xs[1], xs[2], k, stride, pad);
        let s = PoolShape { w: xs[3], ..s };
        let (oh, ow) = s.out_hw();
        let y = self.activation("maxpool", &[xs[0], xs[1], oh, ow], &[x]);
        let argmax = self.add_tensor("maxpool.argmax", &[xs[0], xs[1], oh, ow], Kind::Activation, false);
        self.push(PoolOps::MaxPool { x, y, argmax, s });
        Ok(y)
    }

    /// [N, C, H, W] -> [N, C]
    pub fn global_avg_pool(&mut self, x: TensorId) -> Result<TensorId> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 {
            return shape_error("global_avg_pool", format!("input {xs:?} must be [N,C,H,W]"));
        }
        self.reduce(x, [xs[0] * xs[1], xs[2] * xs[3], 1], ReduceOp::Mean, &[xs[0], xs[1]])
    }

    /// y[o, i] = op over r of x viewed as [o, r, i], with output shape `out_shape`.
    pub fn reduce(&mut self, x: TensorId, dims: [usize; 3], op: ReduceOp, out_shape: &[usize]) -> Result<TensorId> {
        if dims.iter().product::<usize>() != self.info(x).len()
            || out_shape.iter().product::<usize>() != dims[0] * dims[2]
        {
            return shape_error("reduce", format!("{dims:?} over {:?} into {out_shape:?}", self.shape(x)));
        }
        let y = self.activation("reduce", out_shape, &[x]);
        self.push(ReduceOps::Reduce { x, y, dims, op });
        Ok(y)
    }

    /// Mean of all elements -> [1].
    pub fn mean(&mut self, x: TensorId) -> Result<TensorId> {
        let n = self.info(x).len();
        self.reduce(x, [1, n, 1], ReduceOp::Mean, &[1])
    }

    /// C = op(A) op(B) (+ bias) for 2-D A and B.
    pub fn matmul(
        &mut self,
        a: TensorId,
        b: TensorId,
        bias: Option<TensorId>,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<TensorId> {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        if sa.len() != 2 || sb.len() != 2 {
            return shape_error("matmul", format!("{sa:?} x {sb:?} must be 2-D"));
        }
        let (m, k) = if trans_a { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
        let (k2, n) = if trans_b { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
        if k != k2 {
            return shape_error(
                "matmul",
                format!(
                    "{sa:?}{} x {sb:?}{}: inner sizes {k} and {k2} differ",
                    if trans_a { "^T" } else { "" },
                    if trans_b { "^T" } else { "" }
                ),
            );
        }
        if let Some(bias) = bias {
            if self.info(bias).len() != n {
                return shape_error("matmul", format!("bias of {} values for {n} columns", self.info(bias).len()));
            }
        }
        let mut ins = vec![a, b];
        ins.extend(bias);
        let c = self.activation("matmul", &[m, n], &ins);
        self.push(MatmulOps { a, b, bias, c, s: MatmulShape { m, n, k, trans_a, trans_b } });
        Ok(c)
    }

    /// y = x W^T + b, PyTorch's Linear: x [B, in], W [out, in].
    pub fn linear(&mut self, x: TensorId, w: TensorId, b: Option<TensorId>) -> Result<TensorId> {
        self.matmul(x, w, b, false, true)
    }

    fn rows(&mut self, kind: RowKind, x: TensorId, scale: f32) -> Result<TensorId> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 2 {
            return shape_error("rows", format!("{kind:?} needs [rows, cols], got {xs:?}"));
        }
        let y = self.activation("rows", &xs, &[x]);
        self.push(RowsOps::Rows { kind, x, y, rows: xs[0], cols: xs[1], scale });
        Ok(y)
    }

    /// Each row divided by max(its L2 norm, 1e-12).
    pub fn l2_normalize(&mut self, x: TensorId) -> Result<TensorId> {
        self.rows(RowKind::L2Normalize, x, 1.0)
    }

    pub fn softmax(&mut self, x: TensorId, scale: f32) -> Result<TensorId> {
        self.rows(RowKind::Softmax, x, scale)
    }

    pub fn log_softmax(&mut self, x: TensorId, scale: f32) -> Result<TensorId> {
        self.rows(RowKind::LogSoftmax, x, scale)
    }

    /// Per-row -sum_k q log_softmax(scale x) -> [rows]. No gradient flows into `q`.
    pub fn cross_entropy(&mut self, x: TensorId, q: TensorId, scale: f32) -> Result<TensorId> {
        let (xs, qs) = (self.shape(x).to_vec(), self.shape(q).to_vec());
        if xs.len() != 2 || xs != qs {
            return shape_error("cross_entropy", format!("logits {xs:?} and targets {qs:?}"));
        }
        let loss = self.activation("cross_entropy", &[xs[0]], &[x]);
        self.push(LossOps::CrossEntropy { x, q, loss, rows: xs[0], cols: xs[1], scale });
        Ok(loss)
    }

    /// Concatenation along the first axis (all other axes equal).
    pub fn concat(&mut self, xs: &[TensorId]) -> Result<TensorId> {
        let Some(&first) = xs.first() else {
            return shape_error("concat", "nothing to concatenate".into());
        };
        let tail = self.shape(first)[1..].to_vec();
        let mut rows = 0;
        for &x in xs {
            if self.shape(x)[1..] != tail[..] {
                return shape_error(
                    "concat",
                    format!("{:?} does not match {:?} after the first axis", self.shape(x), self.shape(first)),
                );
            }
            rows += self.shape(x)[0];
        }
        let mut shape = vec![rows];
        shape.extend(&tail);
        let y = self.activation("concat", &shape, xs);
        self.push(ElementwiseOps::Concat { xs: xs.to_vec(), y });
        Ok(y)
    }

    /// Rows [start, start + count) of x along the first axis.
    pub fn slice_rows(&mut self, x: TensorId, start: usize, count: usize) -> Result<TensorId> {
        let xs = self.shape(x).to_vec();
        if count == 0 || start + count > xs[0] {
            return shape_error("slice_rows", format!("rows {start}..{} of {xs:?}", start + count));
        }
        let row: usize = xs[1..].iter().product();
        let mut shape = xs.clone();
        shape[0] = count;
        let y = self.activation("slice", &shape, &[x]);
        self.push(ElementwiseOps::Slice { x, y, offset: start * row });
        Ok(y)
    }

    // ---- SwAV ops (no gradient flows through them) -------------------------------------

    /// Re-normalises the rows of a persistent tensor in place at this point of every step.
    pub fn renorm_rows(&mut self, x: TensorId) -> Result<()> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 2 || !self.info(x).persistent() {
            return shape_error(
                "renorm_rows",
                format!("'{}' {xs:?} must be a persistent 2-D tensor", self.info(x).name),
            );
        }
        let scratch = self.add_tensor("renorm.scratch", &xs, Kind::Activation, false);
        self.push(RowsOps::RenormRows { x, scratch, rows: xs[0], cols: xs[1] });
        Ok(())
    }

    /// Codes [batch, K] of x [queue_rows + batch, K]; `active` [1] says how many queue rows
    /// take part this step.
    pub fn sinkhorn(&mut self, x: TensorId, active: TensorId, s: SinkhornShape) -> Result<TensorId> {
        if self.shape(x) != [s.rows(), s.k] || self.info(active).len() != 1 {
            return shape_error("sinkhorn", format!("scores {:?} for {s:?}", self.shape(x)));
        }
        let codes = self.add_tensor("codes", &[s.batch, s.k], Kind::Activation, false);
        self.push(SinkhornOps::Sinkhorn { x, active, codes, s });
        Ok(codes)
    }

    /// In place, outside autograd: each of `xs` summed over the ranks and scaled by `scale`,
    /// all in one exchange (the data-parallel gradient average). Only in graphs for a world
    /// of several ranks.
    pub fn all_reduce(&mut self, xs: &[TensorId], scale: f32) -> Result<()> {
        if self.world <= 1 || xs.is_empty() {
            return shape_error("all_reduce", format!("{} tensors in a world of {}", xs.len(), self.world));
        }
        self.ops.push(Op::AllReduce { xs: xs.to_vec(), scale });
        Ok(())
    }

    /// Targets [n_crops * batch, K] for the swapped prediction.
    pub fn swav_targets(
        &mut self,
        codes: TensorId,
        batch: usize,
        n_crops: usize,
        assign: &[usize],
    ) -> Result<TensorId> {
        let cs = self.shape(codes).to_vec();
        if cs.len() != 2 || cs[0] != assign.len() * batch {
            return shape_error(
                "swav_targets",
                format!("codes {cs:?} for {} assignment crops of batch {batch}", assign.len()),
            );
        }
        let t = self.add_tensor("targets", &[n_crops * batch, cs[1]], Kind::Activation, false);
        self.push(SinkhornOps::SwavTargets { codes, t, batch, n_crops, assign: assign.to_vec() });
        Ok(t)
    }

    /// Pushes rows [src_row, src_row + batch) of `src` to the front of `queue` (oldest rows
    /// fall off the end).
    pub fn queue_push(&mut self, queue: TensorId, src: TensorId, src_row: usize, batch: usize) -> Result<()> {
        let (qs, ss) = (self.shape(queue).to_vec(), self.shape(src).to_vec());
        if qs.len() != 2
            || ss.len() != 2
            || qs[1] != ss[1]
            || batch == 0
            || batch > qs[0]
            || src_row + batch > ss[0]
            || self.info(queue).kind != Kind::Buffer
        {
            return shape_error("queue_push", format!("{batch} rows from row {src_row} of {ss:?} into queue {qs:?}"));
        }
        let scratch =
            (qs[0] > batch).then(|| self.add_tensor("queue.scratch", &[qs[0] - batch, qs[1]], Kind::Activation, false));
        self.push(ElementwiseOps::QueuePush { queue, src, src_row, scratch, batch });
        Ok(())
    }
}

impl crate::ops::rules::Recorder for Graph {
    type Op = Op;

    fn shape(&self, t: TensorId) -> &[usize] {
        &self.tensors[t.0].shape
    }

    fn dtype(&self, t: TensorId) -> crate::gpu::DType {
        self.tensors[t.0].dtype
    }

    fn new_activation(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: crate::gpu::DType,
        inputs: &[TensorId],
    ) -> TensorId {
        let t = self.activation(name, shape, inputs);
        self.tensors[t.0].dtype = dtype;
        t
    }

    fn record(&mut self, op: Op) {
        self.ops.push(op);
        self.forward_len = self.ops.len();
    }
}
