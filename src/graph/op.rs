//! The graph's op: a sum of the op families' ops (`ops::<family>::graph`), each of which owns
//! its inputs and outputs, lowering, CPU evaluation and gradient rule; `Op` only delegates.
//! The one op of the graph's own is the gradient all-reduce of a data-parallel job.
use std::collections::HashMap;

use super::{Graph, Kind, TensorId};
use crate::dist::Reduce;
use crate::error::{Error, Result};
use crate::gpu::{Exchange, Gpu, Step, Tensor};
use crate::ops::batchnorm::BatchNormOps;
use crate::ops::conv::ConvOps;
use crate::ops::elementwise::ElementwiseOps;
use crate::ops::loss::LossOps;
use crate::ops::matmul::MatmulOps;
use crate::ops::optim::OptimOps;
use crate::ops::pool::PoolOps;
use crate::ops::reduce::ReduceOps;
use crate::ops::rows::RowsOps;
use crate::ops::rules::{self, Buffers, Io, Tape};
use crate::ops::sinkhorn::SinkhornOps;

macro_rules! op_families {
    ($($family:ident($ops:ident)),* $(,)?) => {
        /// Every op the executor knows, forward and backward, by family.
        #[derive(Clone, Debug)]
        pub enum Op {
            $($family($ops),)*
            /// In place, outside autograd: `xs` summed over the ranks of a data-parallel job
            /// and scaled by `scale`, in one exchange (the gradient average).
            AllReduce { xs: Vec<TensorId>, scale: f32 },
        }

        $(impl From<$ops> for Op {
            fn from(op: $ops) -> Op {
                Op::$family(op)
            }
        })*

        impl Op {
            /// What the op reads and writes.
            pub fn io(&self) -> Io {
                match self {
                    $(Op::$family(op) => op.io(),)*
                    Op::AllReduce { xs, .. } => rules::io(xs, xs),
                }
            }

            fn lower_family(&self, b: &Planned) -> Result<Vec<Step>> {
                match self {
                    $(Op::$family(op) => op.lower(b),)*
                    Op::AllReduce { xs, scale } => {
                        let xs = xs.iter().map(|x| b.tensor(*x)).collect::<Result<Vec<_>>>()?;
                        Ok(vec![Step::Exchange(Exchange::in_place("all-reduce", &xs, Reduce::Sum, *scale)?)])
                    }
                }
            }

            fn eval_family(&self, v: &mut Interpreter) -> Result<()> {
                match self {
                    $(Op::$family(op) => op.eval(v),)*
                    Op::AllReduce { .. } => Err(Error::Invalid("all-reduce in a graph for one process".into())),
                }
            }

            fn backward_family(&self, gy: TensorId, tape: &mut GradTape) -> Result<()> {
                match self {
                    $(Op::$family(op) => op.backward(gy, tape),)*
                    Op::AllReduce { .. } => Ok(()),
                }
            }
        }
    };
}

op_families! {
    Conv(ConvOps),
    BatchNorm(BatchNormOps),
    Elementwise(ElementwiseOps),
    Pool(PoolOps),
    Reduce(ReduceOps),
    Matmul(MatmulOps),
    Rows(RowsOps),
    Loss(LossOps),
    Sinkhorn(SinkhornOps),
    Optim(OptimOps),
}

impl Op {
    /// Tensors the op reads (`io().reads`).
    pub fn inputs(&self) -> Vec<TensorId> {
        self.io().reads
    }

    /// Tensors the op writes (`io().writes`).
    pub fn outputs(&self) -> Vec<TensorId> {
        self.io().writes
    }
}

// ---- GPU lowering

/// The plan's buffers as the families' lowering sees them.
struct Planned<'a> {
    gpu: &'a Gpu,
    graph: &'a Graph,
    tensors: &'a [Option<Tensor>],
}

impl Buffers for Planned<'_> {
    fn gpu(&self) -> &Gpu {
        self.gpu
    }

    fn tensor(&self, id: TensorId) -> Result<&Tensor> {
        self.tensors[id.0]
            .as_ref()
            .ok_or_else(|| Error::Invalid(format!("tensor '{}' has no buffer", self.graph.info(id).name)))
    }
}

/// One op -> its steps on the planned tensors: dispatches, and in a graph for several ranks
/// the exchanges between them (gradients, Sinkhorn sums, synchronised batch-norm).
pub(super) fn lower(gpu: &Gpu, graph: &Graph, tensors: &[Option<Tensor>], op: &Op) -> Result<Vec<Step>> {
    op.lower_family(&Planned { gpu, graph, tensors })
}

// ---- CPU evaluation

/// Tensor values by id (the CPU interpreter's, `graph::cpu`).
pub type Values = HashMap<TensorId, Vec<f64>>;

/// The interpreter's values as the families' CPU evaluation sees them.
struct Interpreter<'a> {
    graph: &'a Graph,
    values: &'a mut Values,
}

impl rules::Values for Interpreter<'_> {
    fn get(&self, t: TensorId) -> Result<&[f64]> {
        self.values.get(&t).map(|x| x.as_slice()).ok_or_else(|| {
            Error::Invalid(format!("CPU interpreter: no value for tensor '{}' ({:?})", self.graph.info(t).name, t))
        })
    }

    /// A tensor stored as f16 holds what the GPU stores: every value rounded to f16 where it
    /// is written, the points where f16 storage rounds.
    fn set(&mut self, t: TensorId, value: Vec<f64>) {
        let value = match self.graph.info(t).dtype {
            crate::gpu::DType::F16 => crate::ops::elementwise::cpu::round_to_f16(&value),
            _ => value,
        };
        self.values.insert(t, value);
    }

    fn shape(&self, t: TensorId) -> &[usize] {
        self.graph.shape(t)
    }
}

pub(super) fn eval(graph: &Graph, op: &Op, values: &mut Values) -> Result<()> {
    if graph.world > 1 {
        // The CPU evaluation is of one process; the ranks meet only in a plan.
        return Err(Error::Invalid(format!(
            "a graph for a world of {} ranks cannot be evaluated on the CPU",
            graph.world
        )));
    }
    op.eval_family(&mut Interpreter { graph, values })
}

// ---- Gradient rules

/// The graph under differentiation as the families' gradient rules see it.
pub(super) struct GradTape<'a> {
    pub graph: &'a mut Graph,
    /// Every tensor that has a gradient so far -> that gradient.
    pub grads: &'a mut HashMap<TensorId, TensorId>,
}

impl Tape for GradTape<'_> {
    type Op = Op;

    fn needs(&self, t: TensorId) -> bool {
        self.graph.info(t).requires_grad
    }

    fn grad_tensor(&mut self, like: TensorId) -> TensorId {
        let shape = self.graph.shape(like).to_vec();
        let name = format!("grad.{}", self.graph.info(like).name);
        let g = self.graph.add_tensor(&name, &shape, Kind::Activation, false);
        // A gradient is stored like the tensor it is of (f16 activations, f16 gradients).
        self.graph.tensors[g.0].dtype = self.graph.info(like).dtype;
        g
    }

    fn emit(&mut self, op: Op) {
        self.graph.ops.push(op);
    }

    fn accumulate(&mut self, t: TensorId, g: TensorId) {
        let total = match self.grads.get(&t) {
            Some(&old) => {
                let sum = self.grad_tensor(t);
                self.emit(ElementwiseOps::Add { a: old, b: g, c: sum, alpha: 1.0, beta: 1.0, relu: false }.into());
                sum
            }
            None => g,
        };
        self.grads.insert(t, total);
    }

    fn shape(&self, t: TensorId) -> &[usize] {
        self.graph.shape(t)
    }
}

impl GradTape<'_> {
    /// Appends the backward ops of forward `op` whose output's gradient is `gy`.
    pub fn backward_rule(&mut self, op: &Op, gy: TensorId) -> Result<()> {
        op.backward_family(gy, self)
    }
}
