//! The SwAV objective on the GPU (facebookresearch/swav `main_swav.py`, any world size):
//! prototype renormalisation, Sinkhorn-Knopp codes for the assignment crops (with an optional
//! queue of past embeddings), and the swapped-prediction loss over every other crop.
//! The Sinkhorn and targets kernels are `ops::sinkhorn`.
pub mod cpu;

use crate::error::{shape_err, Result};
use crate::graph::{Graph, TensorId};
pub use crate::ops::sinkhorn::{SinkhornShape, MAX_ASSIGN_CROPS};

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
    /// In a data-parallel job, this rank's share (`queue_length / world` of the run's).
    pub queue_length: usize,
    /// Ranks of a data-parallel job (Sinkhorn runs over all of them).
    pub world: usize,
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
            world: 1,
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
            world: cfg.world,
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
