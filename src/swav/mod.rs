//! The SwAV objective on the GPU (facebookresearch/swav `main_swav.py`, world size 1):
//! prototype renormalisation, Sinkhorn-Knopp codes for the assignment crops (with an optional
//! queue of past embeddings), and the swapped-prediction loss over every other crop.
//!
//! Sinkhorn keeps the per-prototype sums (the partial sums PU and the scaling alpha) as
//! separate small tensors: they are what a multi-GPU version would all-reduce (the total sum
//! of the official code cancels in its first normalisation, so it is not needed).
pub mod cpu;

use crate::error::{shape_err, Result};
use crate::gpu::{f, linear_grid, Dispatch, Gpu, Tensor};
use crate::graph::{Graph, TensorId};
use crate::ops::{check_len, compose, to_u32, vec_subs, vec_width, KernelSource};

const COMMON: &str = include_str!("../../shaders/swav/common.wgsl");
const KERNELS: [(&str, &str); 7] = [
    ("max_colsum", include_str!("../../shaders/swav/max_colsum.wgsl")),
    ("first_shift", include_str!("../../shaders/swav/first_shift.wgsl")),
    ("colsum", include_str!("../../shaders/swav/colsum.wgsl")),
    ("shift", include_str!("../../shaders/swav/shift.wgsl")),
    ("rowsum", include_str!("../../shaders/swav/rowsum.wgsl")),
    ("beta", include_str!("../../shaders/swav/beta.wgsl")),
    ("finish", include_str!("../../shaders/swav/finish.wgsl")),
];
const TARGETS: &str = include_str!("../../shaders/swav/targets.wgsl");

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
}

impl SinkhornShape {
    pub fn rows(&self) -> usize {
        self.queue_rows + self.batch
    }
}

fn source(name: &str, width: usize) -> String {
    let body = KERNELS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).expect("known kernel");
    compose(&[COMMON, body], &vec_subs(width))
}

fn kernel(gpu: &Gpu, name: &str, width: usize) -> wgpu::ComputePipeline {
    gpu.pipeline(&format!("sinkhorn/{name}/w{width}"), || source(name, width), "main")
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
    if s.batch == 0 || s.k == 0 || s.epsilon <= 0.0 || s.iterations == 0 {
        return shape_err(OP, format!("{s:?}"));
    }
    check_len(OP, "scores", x, s.rows() * s.k)?;
    check_len(OP, "active queue rows", active, 1)?;
    check_len(OP, "codes", codes, s.batch * s.k)?;
    let w = vec_width(s.k);
    let kv = s.k / w;
    let blocks = s.rows().div_ceil(ROW_BLOCK);
    let chunks = kv.div_ceil(COL_CHUNK);
    let p = vec![
        to_u32(OP, s.rows())?,
        to_u32(OP, kv)?,
        to_u32(OP, s.queue_rows)?,
        to_u32(OP, s.batch)?,
        f(1.0 / s.epsilon),
        to_u32(OP, blocks)?,
        to_u32(OP, chunks)?,
        f(s.k as f32),
    ];
    let pm = gpu.tensor("sinkhorn partial max", &[blocks, s.k])?;
    let m = gpu.tensor("sinkhorn prototype max", &[s.k])?;
    let pu = gpu.tensor("sinkhorn partial prototype sums", &[blocks, s.k])?;
    let shift = gpu.tensor("sinkhorn prototype shift", &[s.k])?;
    let pv = gpu.tensor("sinkhorn partial sample sums", &[s.rows(), chunks])?;
    let beta = gpu.tensor("sinkhorn sample scaling", &[s.rows()])?;
    let kx = to_u32(OP, kv.div_ceil(256))?;
    let column_pass = [kx, to_u32(OP, blocks)?, 1];
    let per_column = [kx, 1, 1];
    let row_pass = [to_u32(OP, chunks.div_ceil(32))?, to_u32(OP, blocks)?, 1];
    let per_row = linear_grid(gpu, OP, s.rows().div_ceil(256) as u64)?;
    let k = |name: &str| kernel(gpu, name, w);
    let mut d = vec![
        gpu.dispatch("sinkhorn/max_colsum", &k("max_colsum"), &p, &[x, active, &pm, &pu], column_pass)?,
        gpu.dispatch("sinkhorn/first_shift", &k("first_shift"), &p, &[&pm, &pu, &m, &shift], per_column)?,
    ];
    for it in 0..s.iterations {
        if it > 0 {
            d.push(gpu.dispatch("sinkhorn/colsum", &k("colsum"), &p, &[x, active, &m, &beta, &pu], column_pass)?);
            d.push(gpu.dispatch("sinkhorn/shift", &k("shift"), &p, &[&pu, &m, &shift], per_column)?);
        }
        d.push(gpu.dispatch("sinkhorn/rowsum", &k("rowsum"), &p, &[x, active, &shift, &pv], row_pass)?);
        d.push(gpu.dispatch("sinkhorn/beta", &k("beta"), &p, &[&pv, active, &beta], per_row)?);
    }
    let out = [to_u32(OP, chunks.div_ceil(32))?, to_u32(OP, s.batch.div_ceil(ROW_BLOCK))?, 1];
    let finish = gpu.dispatch("sinkhorn/finish", &k("finish"), &p, &[x, active, &shift, &beta, codes], out)?;
    d.push(finish.keep(pm).keep(m).keep(pu).keep(shift).keep(pv).keep(beta));
    Ok(d)
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
    let mut params = vec![to_u32(OP, n_crops * batch)?, to_u32(OP, k)?, to_u32(OP, batch)?, assign.len() as u32];
    for i in 0..MAX_ASSIGN_CROPS {
        params.push(assign.get(i).map_or(u32::MAX, |&c| c as u32));
    }
    let pipeline = gpu.pipeline("swav/targets", || TARGETS.to_string(), "main");
    let grid = linear_grid(gpu, OP, (n_crops * batch * k).div_ceil(256) as u64)?;
    gpu.dispatch(OP, &pipeline, &params, &[codes, t], grid)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    let mut v: Vec<KernelSource> = KERNELS
        .iter()
        .flat_map(|(n, _)| [1, 4].map(|w| KernelSource { name: format!("sinkhorn/{n}/w{w}"), source: source(n, w) }))
        .collect();
    v.push(KernelSource { name: "swav/targets".into(), source: TARGETS.into() });
    v
}

/// The objective's settings (official defaults in `Default`).
#[derive(Clone, Debug, PartialEq)]
pub struct SwavConfig {
    pub batch: usize,
    /// Total crops per image (large + small).
    pub n_crops: usize,
    pub crops_for_assign: Vec<usize>,
    pub temperature: f32,
    pub epsilon: f32,
    pub sinkhorn_iterations: usize,
    /// Queue rows per assignment crop (0 = no queue); rounded down to a multiple of `batch`.
    pub queue_length: usize,
}

impl Default for SwavConfig {
    fn default() -> Self {
        SwavConfig {
            batch: 64,
            n_crops: 6,
            crops_for_assign: vec![0, 1],
            temperature: 0.1,
            epsilon: 0.05,
            sinkhorn_iterations: 3,
            queue_length: 0,
        }
    }
}

impl SwavConfig {
    pub fn effective_queue_length(&self) -> usize {
        self.queue_length.checked_div(self.batch).map_or(0, |n| n * self.batch)
    }
}

/// The tensors the objective adds to a graph.
#[derive(Clone, Debug)]
pub struct SwavObjective {
    /// Scalar loss [1] (kept).
    pub loss: TensorId,
    /// Codes of each assignment crop [batch, K] (kept).
    pub codes: Vec<TensorId>,
    /// Per assignment crop, the queue [queue_length, D] (persistent buffers `queue.{i}`).
    pub queues: Vec<TensorId>,
    /// [1]: how many queue rows Sinkhorn uses this step (input `queue.active`: 0 until the
    /// queue is full, then queue_length). A constant 0 without a queue.
    pub queue_active: TensorId,
}

/// Adds the SwAV loss on `scores` (emb @ C^T, [n_crops * batch, K], crop-major rows) to the
/// graph. `emb` ([n_crops * batch, D]) and the normalised prototypes `prototypes` ([K, D])
/// feed the queue. Codes carry no gradient.
pub fn objective(
    g: &mut Graph,
    cfg: &SwavConfig,
    emb: TensorId,
    scores: TensorId,
    prototypes: TensorId,
) -> Result<SwavObjective> {
    let (n, k) = (g.shape(scores)[0], g.shape(scores)[1]);
    let d = g.shape(emb)[1];
    if n != cfg.batch * cfg.n_crops || g.shape(emb)[0] != n || g.shape(prototypes) != [k, d] {
        return shape_err(
            "swav",
            format!(
                "scores {:?}, emb {:?}, prototypes {:?} for batch {} x {} crops",
                g.shape(scores),
                g.shape(emb),
                g.shape(prototypes),
                cfg.batch,
                cfg.n_crops
            ),
        );
    }
    if cfg.n_crops < 2
        || cfg.crops_for_assign.is_empty()
        || cfg.crops_for_assign.len() > MAX_ASSIGN_CROPS
        || cfg.crops_for_assign.iter().any(|&c| c >= cfg.n_crops)
    {
        return shape_err("swav", format!("crops_for_assign {:?} with {} crops", cfg.crops_for_assign, cfg.n_crops));
    }
    let lq = cfg.effective_queue_length();
    let queue_active = if lq > 0 { g.input("queue.active", &[1])? } else { g.constant("queue.none", &[1], vec![0.0])? };
    let mut codes = Vec::new();
    let mut queues = Vec::new();
    for (i, &c) in cfg.crops_for_assign.iter().enumerate() {
        let crop_scores = g.slice_rows(scores, c * cfg.batch, cfg.batch)?;
        let x = if lq > 0 {
            let queue = g.buffer(&format!("queue.{i}"), &[lq, d])?;
            queues.push(queue);
            let queue_scores = g.matmul(queue, prototypes, None, false, true)?;
            let x = g.concat(&[queue_scores, crop_scores])?;
            g.queue_push(queue, emb, c * cfg.batch, cfg.batch)?;
            x
        } else {
            crop_scores
        };
        let s = SinkhornShape {
            queue_rows: lq,
            batch: cfg.batch,
            k,
            epsilon: cfg.epsilon,
            iterations: cfg.sinkhorn_iterations,
        };
        let q = g.sinkhorn(x, queue_active, s)?;
        g.keep(q, &format!("codes.{i}"));
        codes.push(q);
    }
    let all_codes = if codes.len() == 1 { codes[0] } else { g.concat(&codes)? };
    let t = g.swav_targets(all_codes, cfg.batch, cfg.n_crops, &cfg.crops_for_assign)?;
    let per_row = g.cross_entropy(scores, t, 1.0 / cfg.temperature)?;
    let mean = g.mean(per_row)?;
    // mean over all N rows -> the official normalisation: / (B * (n_crops - 1) * n_assign).
    let factor = cfg.n_crops as f32 / ((cfg.n_crops - 1) * cfg.crops_for_assign.len()) as f32;
    let loss = g.scale(mean, factor)?;
    g.keep(loss, "loss");
    Ok(SwavObjective { loss, codes, queues, queue_active })
}
