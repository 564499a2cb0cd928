//! The elementwise ops in the graph, and the data movement built on the copy kernel
//! (concatenation, row slices, the embedding queue's FIFO push).
use super::{add, add_relu, cast, copy, cpu, fill, relu_backward, relu_forward, scale};
use crate::error::Result;
use crate::gpu::{runs, DType, Step};
use crate::ops::rules::{io, no_backward_rule, Buffers, Io, Recorder, Tape, TensorId, Values};

#[derive(Clone, Debug)]
pub enum ElementwiseOps {
    Relu {
        x: TensorId,
        y: TensorId,
    },
    ReluBackward {
        x: TensorId,
        dy: TensorId,
        dx: TensorId,
    },
    /// c = alpha * a + beta * b
    Add {
        a: TensorId,
        b: TensorId,
        c: TensorId,
        alpha: f32,
        beta: f32,
        /// max(C, 0) in the same pass (set by the plan's fusion, never by models).
        relu: bool,
    },
    Scale {
        x: TensorId,
        y: TensorId,
        alpha: f32,
    },
    Fill {
        y: TensorId,
        value: f32,
    },
    /// y = the xs one after another (concatenation along the first axis).
    Concat {
        xs: Vec<TensorId>,
        y: TensorId,
    },
    /// y = x[offset .. offset + len(y)] (a range of rows).
    Slice {
        x: TensorId,
        y: TensorId,
        offset: usize,
    },
    /// dx = 0 except dx[offset .. offset + len(dy)] = dy.
    SliceBackward {
        dy: TensorId,
        dx: TensorId,
        offset: usize,
    },
    /// y = x stored as `to` (f32 <-> f16); its gradient is the cast back.
    Cast {
        x: TensorId,
        y: TensorId,
        to: DType,
    },
    /// FIFO push of `batch` rows of `src` (from row `src_row`) to the front of the persistent
    /// `queue` [len, D], through `scratch` [len - batch, D]. Outside autograd.
    QueuePush {
        queue: TensorId,
        src: TensorId,
        src_row: usize,
        scratch: Option<TensorId>,
        batch: usize,
    },
}

impl ElementwiseOps {
    pub fn io(&self) -> Io {
        match self {
            Self::Relu { x, y } => io(&[*x], &[*y]),
            Self::ReluBackward { x, dy, dx } => io(&[*x, *dy], &[*dx]),
            Self::Add { a, b, c, .. } => io(&[*a, *b], &[*c]),
            Self::Scale { x, y, .. } => io(&[*x], &[*y]),
            Self::Fill { y, .. } => io(&[], &[*y]),
            Self::Concat { xs, y } => io(xs, &[*y]),
            Self::Slice { x, y, .. } => io(&[*x], &[*y]),
            Self::SliceBackward { dy, dx, .. } => io(&[*dy], &[*dx]),
            Self::Cast { x, y, .. } => io(&[*x], &[*y]),
            Self::QueuePush { queue, src, scratch, .. } => {
                let writes: Vec<TensorId> = scratch.iter().copied().collect();
                io(&[*queue, *src], &writes)
            }
        }
    }

    pub fn lower(&self, b: &impl Buffers) -> Result<Vec<Step>> {
        let (gpu, t) = (b.gpu(), |id| b.tensor(id));
        Ok(runs(match self {
            Self::Relu { x, y } => vec![relu_forward(gpu, t(*x)?, t(*y)?)?],
            Self::ReluBackward { x, dy, dx } => vec![relu_backward(gpu, t(*x)?, t(*dy)?, t(*dx)?)?],
            Self::Add { a, b, c, alpha, beta, relu: false } => vec![add(gpu, t(*a)?, t(*b)?, t(*c)?, *alpha, *beta)?],
            Self::Add { a, b, c, alpha, beta, relu: true } => {
                vec![add_relu(gpu, t(*a)?, t(*b)?, t(*c)?, *alpha, *beta)?]
            }
            Self::Scale { x, y, alpha } => vec![scale(gpu, t(*x)?, t(*y)?, *alpha)?],
            Self::Fill { y, value } => vec![fill(gpu, t(*y)?, *value)?],
            Self::Concat { xs, y } => {
                let mut out = Vec::new();
                let mut offset = 0;
                for x in xs {
                    let len = t(*x)?.len();
                    out.push(copy(gpu, t(*x)?, t(*y)?, 0, offset, len)?);
                    offset += len;
                }
                out
            }
            Self::Slice { x, y, offset } => vec![copy(gpu, t(*x)?, t(*y)?, *offset, 0, t(*y)?.len())?],
            Self::SliceBackward { dy, dx, offset } => {
                vec![fill(gpu, t(*dx)?, 0.0)?, copy(gpu, t(*dy)?, t(*dx)?, 0, *offset, t(*dy)?.len())?]
            }
            Self::Cast { x, y, .. } => vec![cast(gpu, t(*x)?, t(*y)?)?],
            Self::QueuePush { queue, src, src_row, scratch, batch } => {
                let (q, d) = (t(*queue)?, t(*queue)?.shape()[1]);
                let mut out = Vec::new();
                if let Some(scratch) = scratch {
                    // Shift through the scratch: one dispatch may not read and write one buffer.
                    out.push(copy(gpu, q, t(*scratch)?, 0, 0, q.len() - batch * d)?);
                    out.push(copy(gpu, t(*scratch)?, q, 0, batch * d, q.len() - batch * d)?);
                }
                out.push(copy(gpu, t(*src)?, q, src_row * d, 0, batch * d)?);
                out
            }
        }))
    }

    pub fn eval(&self, v: &mut impl Values) -> Result<()> {
        match self {
            Self::Relu { x, y } => {
                let out = cpu::relu_forward(v.get(*x)?);
                v.set(*y, out);
            }
            Self::ReluBackward { x, dy, dx } => {
                let out = cpu::relu_backward(v.get(*x)?, v.get(*dy)?);
                v.set(*dx, out);
            }
            Self::Add { a, b, c, alpha, beta, relu } => {
                let mut out = cpu::add(v.get(*a)?, v.get(*b)?, *alpha as f64, *beta as f64);
                if *relu {
                    out = cpu::relu_forward(&out);
                }
                v.set(*c, out);
            }
            Self::Scale { x, y, alpha } => {
                let out = cpu::scale(v.get(*x)?, *alpha as f64);
                v.set(*y, out);
            }
            Self::Fill { y, value } => v.set(*y, vec![*value as f64; v.len(*y)]),
            Self::Concat { xs, y } => {
                let mut out = Vec::with_capacity(v.len(*y));
                for x in xs {
                    out.extend_from_slice(v.get(*x)?);
                }
                v.set(*y, out);
            }
            Self::Slice { x, y, offset } => {
                let out = v.get(*x)?[*offset..*offset + v.len(*y)].to_vec();
                v.set(*y, out);
            }
            Self::SliceBackward { dy, dx, offset } => {
                let mut out = vec![0.0; v.len(*dx)];
                let d = v.get(*dy)?;
                cpu::copy(d, &mut out, 0, *offset, d.len());
                v.set(*dx, out);
            }
            Self::Cast { x, y, to } => {
                let out = if *to == DType::F16 { cpu::round_to_f16(v.get(*x)?) } else { v.get(*x)?.to_vec() };
                v.set(*y, out);
            }
            Self::QueuePush { queue, src, src_row, batch, .. } => {
                let d = v.shape(*queue)[1];
                let old = v.get(*queue)?;
                let mut new = v.get(*src)?[src_row * d..(src_row + batch) * d].to_vec();
                new.extend_from_slice(&old[..old.len() - batch * d]);
                v.set(*queue, new);
            }
        }
        Ok(())
    }

    pub fn backward<T: Tape>(&self, gy: TensorId, tape: &mut T) -> Result<()>
    where
        T::Op: From<Self>,
    {
        match *self {
            Self::Relu { x, .. } => tape.propagate(x, |dx| Self::ReluBackward { x, dy: gy, dx }),
            Self::Add { a, b, alpha, beta, .. } => {
                for (t, k) in [(a, alpha), (b, beta)] {
                    if !tape.needs(t) {
                        continue;
                    }
                    let g = if k == 1.0 {
                        gy
                    } else {
                        let g = tape.grad_tensor(t);
                        tape.emit(Self::Scale { x: gy, y: g, alpha: k }.into());
                        g
                    };
                    tape.accumulate(t, g);
                }
            }
            Self::Scale { x, alpha, .. } => tape.propagate(x, |dx| Self::Scale { x: gy, y: dx, alpha }),
            Self::Concat { ref xs, .. } => {
                let mut offset = 0;
                for &x in xs {
                    tape.propagate(x, |dx| Self::Slice { x: gy, y: dx, offset });
                    offset += tape.len(x);
                }
            }
            Self::Slice { x, offset, .. } => tape.propagate(x, |dx| Self::SliceBackward { dy: gy, dx, offset }),
            Self::Cast { x, to, .. } => {
                let back = if to == DType::F16 { DType::F32 } else { DType::F16 };
                tape.propagate(x, |dx| Self::Cast { x: gy, y: dx, to: back });
            }
            // Outside autograd: constants and the queue.
            Self::Fill { .. } | Self::QueuePush { .. } => {}
            Self::ReluBackward { .. } | Self::SliceBackward { .. } => return no_backward_rule(self),
        }
        Ok(())
    }
}

/// The family's builders.
impl ElementwiseOps {
    /// `x` stored as `to` (f32 <-> f16): the boundary of f16 storage.
    pub fn cast<R: Recorder>(g: &mut R, x: TensorId, to: DType) -> Result<TensorId>
    where
        R::Op: From<Self>,
    {
        let from = g.dtype(x);
        if !matches!((from, to), (DType::F32, DType::F16) | (DType::F16, DType::F32)) {
            return Err(crate::Error::Shape { op: "cast", detail: format!("from {from} to {to} (f32 <-> f16 only)") });
        }
        let shape = g.shape(x).to_vec();
        let y = g.new_activation(&format!("cast to {to}"), &shape, to, &[x]);
        g.record(Self::Cast { x, y, to }.into());
        Ok(y)
    }
}
