//! Sinkhorn-Knopp codes from prototype scores, and the swapped-prediction targets from the
//! codes (`shaders/swav`): the kernels of SwAV's assignment step. The objective that uses
//! them is `swav`.
//!
//! Sinkhorn keeps the per-prototype sums (the partial sums PU and the scaling alpha) as
//! separate small tensors: `sinkhorn_steps` all-reduces them between the passes when the
//! problem is spread over the ranks of a data-parallel job (the total sum of the official
//! code cancels in its first normalisation, so it is not needed).
pub mod cpu;
mod graph;

pub use graph::SinkhornOps;

use crate::dist::Reduce;
use crate::error::{shape_err, Result};
use crate::gpu::{linear_grid, runs, words, Dispatch, Exchange, Gpu, Kernel, Step, Tensor};
use crate::ops::{check_len, compose, sources, to_u32, vec_subs, vec_width, KernelSource, Layout};

const COMMON: &str = include_str!("../../../shaders/swav/common.wgsl");
/// Sinkhorn's passes (shaders/swav), each under common.wgsl at a vector width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    MaxColsum,
    FirstShift,
    Colsum,
    Shift,
    Rowsum,
    Beta,
    Finish,
    BlockMax,
    BlockSum,
}

impl Pass {
    const ALL: [Pass; 9] = [
        Pass::MaxColsum,
        Pass::FirstShift,
        Pass::Colsum,
        Pass::Shift,
        Pass::Rowsum,
        Pass::Beta,
        Pass::Finish,
        Pass::BlockMax,
        Pass::BlockSum,
    ];

    fn name_and_body(self) -> (&'static str, &'static str) {
        match self {
            Pass::MaxColsum => ("max_colsum", include_str!("../../../shaders/swav/max_colsum.wgsl")),
            Pass::FirstShift => ("first_shift", include_str!("../../../shaders/swav/first_shift.wgsl")),
            Pass::Colsum => ("colsum", include_str!("../../../shaders/swav/colsum.wgsl")),
            Pass::Shift => ("shift", include_str!("../../../shaders/swav/shift.wgsl")),
            Pass::Rowsum => ("rowsum", include_str!("../../../shaders/swav/rowsum.wgsl")),
            Pass::Beta => ("beta", include_str!("../../../shaders/swav/beta.wgsl")),
            Pass::Finish => ("finish", include_str!("../../../shaders/swav/finish.wgsl")),
            Pass::BlockMax => ("block_max", include_str!("../../../shaders/swav/block_max.wgsl")),
            Pass::BlockSum => ("block_sum", include_str!("../../../shaders/swav/block_sum.wgsl")),
        }
    }
}

/// The family's kernels: Sinkhorn's passes at a vector width (1 or 4), and the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SinkhornKernel {
    Pass(Pass, usize),
    Targets,
}

impl Kernel for SinkhornKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some((
            "Params",
            match self {
                Self::Pass(..) => std::mem::size_of::<SinkhornParams>(),
                Self::Targets => std::mem::size_of::<TargetsParams>(),
            },
        ))
    }

    fn all() -> Vec<Self> {
        let mut v: Vec<Self> = Pass::ALL.iter().flat_map(|&p| [1, 4].map(|w| Self::Pass(p, w))).collect();
        v.push(Self::Targets);
        v
    }

    fn name(&self) -> String {
        match self {
            Self::Pass(p, w) => format!("sinkhorn/{}/w{w}", p.name_and_body().0),
            Self::Targets => "swav/targets".into(),
        }
    }

    fn source(&self) -> String {
        match self {
            Self::Pass(p, w) => {
                compose(&[COMMON, p.name_and_body().1], &vec_subs(Layout::new(*w, crate::gpu::DType::F32)))
            }
            Self::Targets => include_str!("../../../shaders/swav/targets.wgsl").into(),
        }
    }
}

/// Most assignment crops the targets kernel takes (the official recipe uses 2).
pub const MAX_ASSIGN_CROPS: usize = 4;

/// Shape of one Sinkhorn problem: `queue_rows` queue samples then `batch` samples, K columns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SinkhornShape {
    pub queue_rows: usize,
    pub batch: usize,
    pub k: usize,
    pub epsilon: f32,
    pub iterations: usize,
    /// Ranks of a data-parallel job, each with its own `rows()` of the global problem (1:
    /// one process). See `sinkhorn_steps`.
    pub world: usize,
}

impl SinkhornShape {
    pub fn rows(&self) -> usize {
        self.queue_rows + self.batch
    }
}

/// `Params` of shaders/swav/common.wgsl (kv: K in V's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct SinkhornParams {
    rows: u32,
    kv: u32,
    queue_rows: u32,
    batch: u32,
    inv_eps: f32,
    blocks: u32,
    chunks: u32,
    k: f32,
    world: u32,
    rescale: u32,
    pad: [u32; 2],
}

/// `Params` of shaders/swav/targets.wgsl: the assignment crops, u32::MAX past n_assign.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct TargetsParams {
    rows: u32,
    k: u32,
    batch: u32,
    n_assign: u32,
    crops: [u32; MAX_ASSIGN_CROPS],
}

/// Rows per invocation in the column passes and V's per invocation in the row passes (must
/// match ROW_BLOCK / COL_CHUNK in shaders/swav/common.wgsl).
const ROW_BLOCK: usize = 64;
const COL_CHUNK: usize = 8;

/// Codes [batch, K] from scores X [queue_rows + batch, K]. `active` ([1]) holds how many queue
/// rows take part (0 or queue_rows). The official steps (Q = exp(X/eps), Q /= sum(Q);
/// `iterations` x (Q /= per-prototype sums, /= K; Q /= per-sample sums, /= B_s); Q *= B_s;
/// keep the batch rows) computed as Q = diag(beta) E diag(alpha) with E = exp((X - M)/eps),
/// M the per-prototype maximum: two read-only passes over X per iteration and one that
/// writes the codes (see shaders/swav/common.wgsl). Temporaries are owned by the dispatches.
pub fn sinkhorn(gpu: &Gpu, x: &Tensor, active: &Tensor, codes: &Tensor, s: SinkhornShape) -> Result<Vec<Dispatch>> {
    const OP: &str = "sinkhorn";
    if s.world != 1 {
        return shape_err(OP, format!("a Sinkhorn over {} ranks has exchanges: use sinkhorn_steps", s.world));
    }
    let b = Buffers::new(gpu, x, active, codes, s)?;
    let (k, p) = (|pass| SinkhornKernel::Pass(pass, b.width), &b.params);
    let mut d = vec![
        k(Pass::MaxColsum).dispatch(gpu, p, &[x, active, &b.pm, &b.pu], b.column_pass)?,
        k(Pass::FirstShift).dispatch(gpu, p, &[&b.pm, &b.pu, &b.m, &b.shift], b.per_column)?,
    ];
    for it in 0..s.iterations {
        if it > 0 {
            d.push(k(Pass::Colsum).dispatch(gpu, p, &[x, active, &b.m, &b.beta, &b.pu], b.column_pass)?);
            d.push(k(Pass::Shift).dispatch(gpu, p, &[&b.pu, &b.m, &b.shift], b.per_column)?);
        }
        d.extend(b.sample_normalisation(gpu, x, active)?);
    }
    d.push(b.finish(gpu, x, active, codes)?);
    Ok(d)
}

/// Sinkhorn over the ranks of a data-parallel job (`s.world` of them, each with its own
/// queue and batch rows; the official `distributed_sinkhorn`): the per-prototype maximum is
/// all-reduced with max (so every rank's block is shifted alike, else the codes would be
/// wrong), and each iteration's per-prototype sums with sum; the per-sample normalisation is
/// local and B_s counts every rank's samples. The codes equal a one-process Sinkhorn on the
/// concatenated scores. A world of one is `sinkhorn` with no exchange.
pub fn sinkhorn_steps(gpu: &Gpu, x: &Tensor, active: &Tensor, codes: &Tensor, s: SinkhornShape) -> Result<Vec<Step>> {
    if s.world == 1 {
        return Ok(runs(sinkhorn(gpu, x, active, codes, s)?));
    }
    let b = Buffers::new(gpu, x, active, codes, s)?;
    let (k, p) = (|pass| SinkhornKernel::Pass(pass, b.width), &b.params);
    let mut rescaled = bytemuck::pod_read_unaligned::<SinkhornParams>(bytemuck::cast_slice(p));
    rescaled.rescale = 1;
    let rescaled = words(&rescaled);
    // The shift from the all-reduced sums: shift.wgsl over one "block".
    let mut one_block = bytemuck::pod_read_unaligned::<SinkhornParams>(bytemuck::cast_slice(p));
    one_block.blocks = 1;
    let one_block = words(&one_block);
    let u = gpu.tensor("sinkhorn prototype sums", &[s.k])?;
    let exchange = |label: &str, t: &Tensor, reduce| {
        Ok::<_, crate::error::Error>(Step::Exchange(Exchange::in_place(label, &[t], reduce, 1.0)?))
    };
    let mut d = vec![
        Step::Run(k(Pass::MaxColsum).dispatch(gpu, p, &[x, active, &b.pm, &b.pu], b.column_pass)?),
        Step::Run(k(Pass::BlockMax).dispatch(gpu, p, &[&b.pm, &b.m], b.per_column)?),
        exchange("sinkhorn prototype max", &b.m, Reduce::Max)?,
        Step::Run(k(Pass::BlockSum).dispatch(gpu, &rescaled, &[&b.pm, &b.pu, &b.m, &u], b.per_column)?),
    ];
    for it in 0..s.iterations {
        if it > 0 {
            d.push(Step::Run(k(Pass::Colsum).dispatch(gpu, p, &[x, active, &b.m, &b.beta, &b.pu], b.column_pass)?));
            d.push(Step::Run(k(Pass::BlockSum).dispatch(gpu, p, &[&b.pm, &b.pu, &b.m, &u], b.per_column)?));
        }
        d.push(exchange("sinkhorn prototype sums", &u, Reduce::Sum)?);
        d.push(Step::Run(k(Pass::Shift).dispatch(gpu, &one_block, &[&u, &b.m, &b.shift], b.per_column)?));
        d.extend(runs(b.sample_normalisation(gpu, x, active)?));
    }
    d.push(Step::Run(b.finish(gpu, x, active, codes)?.keep(u)));
    Ok(d)
}

/// The temporaries, parameters and grids of one Sinkhorn problem.
struct Buffers {
    width: usize,
    params: Vec<u32>,
    pm: Tensor,
    m: Tensor,
    pu: Tensor,
    shift: Tensor,
    pv: Tensor,
    beta: Tensor,
    column_pass: [u32; 3],
    per_column: [u32; 3],
    row_pass: [u32; 3],
    per_row: [u32; 3],
    out: [u32; 3],
}

impl Buffers {
    fn new(gpu: &Gpu, x: &Tensor, active: &Tensor, codes: &Tensor, s: SinkhornShape) -> Result<Buffers> {
        const OP: &str = "sinkhorn";
        if s.batch == 0 || s.k == 0 || s.epsilon <= 0.0 || s.iterations == 0 || s.world == 0 {
            return shape_err(OP, format!("{s:?}"));
        }
        check_len(OP, "scores", x, s.rows() * s.k)?;
        check_len(OP, "active queue rows", active, 1)?;
        check_len(OP, "codes", codes, s.batch * s.k)?;
        let w = vec_width(s.k);
        let kv = s.k / w;
        let blocks = s.rows().div_ceil(ROW_BLOCK);
        let chunks = kv.div_ceil(COL_CHUNK);
        let params = words(&SinkhornParams {
            rows: to_u32(OP, s.rows())?,
            kv: to_u32(OP, kv)?,
            queue_rows: to_u32(OP, s.queue_rows)?,
            batch: to_u32(OP, s.batch)?,
            inv_eps: 1.0 / s.epsilon,
            blocks: to_u32(OP, blocks)?,
            chunks: to_u32(OP, chunks)?,
            k: s.k as f32,
            world: to_u32(OP, s.world)?,
            rescale: 0,
            pad: [0; 2],
        });
        let kx = to_u32(OP, kv.div_ceil(256))?;
        Ok(Buffers {
            width: w,
            params,
            pm: gpu.tensor("sinkhorn partial max", &[blocks, s.k])?,
            m: gpu.tensor("sinkhorn prototype max", &[s.k])?,
            pu: gpu.tensor("sinkhorn partial prototype sums", &[blocks, s.k])?,
            shift: gpu.tensor("sinkhorn prototype shift", &[s.k])?,
            pv: gpu.tensor("sinkhorn partial sample sums", &[s.rows(), chunks])?,
            beta: gpu.tensor("sinkhorn sample scaling", &[s.rows()])?,
            column_pass: [kx, to_u32(OP, blocks)?, 1],
            per_column: [kx, 1, 1],
            row_pass: [to_u32(OP, chunks.div_ceil(32))?, to_u32(OP, blocks)?, 1],
            per_row: linear_grid(gpu, OP, s.rows().div_ceil(256) as u64)?,
            out: [to_u32(OP, chunks.div_ceil(32))?, to_u32(OP, s.batch.div_ceil(ROW_BLOCK))?, 1],
        })
    }

    /// The per-sample sums and scaling (local to a rank).
    fn sample_normalisation(&self, gpu: &Gpu, x: &Tensor, active: &Tensor) -> Result<Vec<Dispatch>> {
        let k = |pass| SinkhornKernel::Pass(pass, self.width);
        let p = &self.params;
        Ok(vec![
            k(Pass::Rowsum).dispatch(gpu, p, &[x, active, &self.shift, &self.pv], self.row_pass)?,
            k(Pass::Beta).dispatch(gpu, p, &[&self.pv, active, &self.beta], self.per_row)?,
        ])
    }

    /// Writes the codes; the dispatch owns the temporaries.
    fn finish(self, gpu: &Gpu, x: &Tensor, active: &Tensor, codes: &Tensor) -> Result<Dispatch> {
        let tensors = [x, active, &self.shift, &self.beta, codes];
        let d = SinkhornKernel::Pass(Pass::Finish, self.width).dispatch(gpu, &self.params, &tensors, self.out)?;
        Ok(d.keep(self.pm).keep(self.m).keep(self.pu).keep(self.shift).keep(self.pv).keep(self.beta))
    }
}

/// Swapped-prediction targets T [n_crops * batch, K] from the codes of the assignment crops
/// ([n_assign * batch, K], in `assign` order).
pub fn targets(
    gpu: &Gpu,
    codes: &Tensor,
    t: &Tensor,
    batch: usize,
    n_crops: usize,
    k: usize,
    assign: &[usize],
) -> Result<Dispatch> {
    const OP: &str = "swav_targets";
    if assign.is_empty() || assign.len() > MAX_ASSIGN_CROPS || assign.iter().any(|&c| c >= n_crops) {
        return shape_err(
            OP,
            format!("assignment crops {assign:?} for {n_crops} crops (1 to {MAX_ASSIGN_CROPS} allowed)"),
        );
    }
    check_len(OP, "codes", codes, assign.len() * batch * k)?;
    check_len(OP, "targets", t, n_crops * batch * k)?;
    let params = words(&TargetsParams {
        rows: to_u32(OP, n_crops * batch)?,
        k: to_u32(OP, k)?,
        batch: to_u32(OP, batch)?,
        n_assign: assign.len() as u32,
        // Unused slots name no crop.
        crops: std::array::from_fn(|i| assign.get(i).map_or(u32::MAX, |&c| c as u32)),
    });
    let grid = linear_grid(gpu, OP, (n_crops * batch * k).div_ceil(256) as u64)?;
    SinkhornKernel::Targets.dispatch(gpu, &params, &[codes, t], grid)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<SinkhornKernel>()
}
