//! What an op family tells the graph executor about each of its ops, and what the executor
//! lends it in return. A family's `graph.rs` holds its ops as one enum (fields name tensors
//! by `TensorId`) with four rules, one per phase: `io` (reads, writes), `lower` (the GPU
//! calls on the planned buffers), `eval` (the f64 CPU references) and `backward` (the
//! gradient rule, appending backward ops to a tape). `graph` implements the three traits
//! below (the plan, the CPU interpreter, autodiff) and never looks inside a family's ops.
use crate::error::Result;
use crate::gpu::{DType, Gpu, Tensor};

/// A tensor of a graph, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

/// The tensors an op reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Io {
    pub reads: Vec<TensorId>,
    pub writes: Vec<TensorId>,
}

pub fn io(reads: &[TensorId], writes: &[TensorId]) -> Io {
    Io { reads: reads.to_vec(), writes: writes.to_vec() }
}

/// The planned buffers, for `lower`.
pub trait Buffers {
    fn gpu(&self) -> &Gpu;
    /// The buffer (or typed view) planned for `id`.
    fn tensor(&self, id: TensorId) -> Result<&Tensor>;
}

/// The CPU interpreter's values, for `eval`.
pub trait Values {
    /// The value of `id` (an error naming the tensor when it has none yet).
    fn get(&self, id: TensorId) -> Result<&[f64]>;
    fn set(&mut self, id: TensorId, value: Vec<f64>);
    fn shape(&self, id: TensorId) -> &[usize];
    fn len(&self, id: TensorId) -> usize {
        self.shape(id).iter().product()
    }
}

/// The autodiff tape, for `backward`: `Op` is the graph's sum of every family's ops.
pub trait Tape {
    type Op;
    /// Whether gradients flow to `t` (it leads to a parameter or a grad-input).
    fn needs(&self, t: TensorId) -> bool;
    /// A new gradient tensor shaped like `like`.
    fn grad_tensor(&mut self, like: TensorId) -> TensorId;
    /// Appends a backward op.
    fn emit(&mut self, op: Self::Op);
    /// Adds `g` to the gradient of `t` (summing when several ops read `t`).
    fn accumulate(&mut self, t: TensorId, g: TensorId);
    fn shape(&self, t: TensorId) -> &[usize];
    fn len(&self, t: TensorId) -> usize {
        self.shape(t).iter().product()
    }

    /// The common rule: when `x` needs a gradient, one backward op (made by `op` from the new
    /// gradient tensor) computes it.
    fn propagate<O>(&mut self, x: TensorId, op: impl FnOnce(TensorId) -> O)
    where
        Self::Op: From<O>,
    {
        if self.needs(x) {
            let dx = self.grad_tensor(x);
            self.emit(op(dx).into());
            self.accumulate(x, dx);
        }
    }
}

/// The graph being recorded, for a family's builders: they check shapes, make the output
/// and record the op (`Op` is the graph's sum of every family's ops).
pub trait Recorder {
    type Op;
    fn shape(&self, t: TensorId) -> &[usize];
    fn dtype(&self, t: TensorId) -> DType;
    /// A new activation that needs a gradient when one of `inputs` does.
    fn new_activation(&mut self, name: &str, shape: &[usize], dtype: DType, inputs: &[TensorId]) -> TensorId;
    fn record(&mut self, op: Self::Op);
}

/// A backward op met by autodiff (backward ops are not differentiated again).
pub fn no_backward_rule(op: &impl std::fmt::Debug) -> Result<()> {
    Err(crate::error::Error::Invalid(format!("no backward rule for {op:?} (a backward op in the forward graph?)")))
}
