//! Evaluation of representations: backbone features (eval-mode batch-norm, L2-normalised),
//! weighted k-NN (InstDisc / DINO: k neighbours by cosine similarity, votes exp(sim / T)) and a
//! linear probe trained on frozen features with the library's own kernels.
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::data::augment;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::Plan;
use crate::graph::{Graph, Kind, TensorId};
use crate::io::NamedTensor;
use crate::model::{backbone, BackboneConfig};

/// The backbone in eval mode on [batch, 3, size, size] inputs.
pub struct FeatureExtractor {
    plan: Plan,
    input: TensorId,
    feat: TensorId,
    batch: usize,
    size: usize,
    pub dim: usize,
}

impl FeatureExtractor {
    pub fn new(gpu: Arc<Gpu>, cfg: &BackboneConfig, batch: usize, size: usize) -> Result<FeatureExtractor> {
        let mut g = Graph::new();
        let input = g.input("image", &[batch, 3, size, size])?;
        let feat = backbone(&mut g, cfg, input, false)?;
        g.keep(feat, "feat");
        let dim = g.shape(feat)[1];
        let plan = Plan::compile(&g, gpu)?;
        Ok(FeatureExtractor { plan, input, feat, batch, size, dim })
    }

    /// Backbone parameters and batch-norm statistics by name (extra keys are ignored).
    pub fn load(&self, state: &BTreeMap<String, NamedTensor>) -> Result<()> {
        let g = self.plan.graph();
        for (name, t) in g.named(Kind::Parameter).into_iter().chain(g.named(Kind::Buffer)) {
            let v = state.get(&name).ok_or_else(|| Error::Invalid(format!("the weights have no '{name}'")))?;
            if v.shape != g.shape(t) {
                return Err(Error::Invalid(format!(
                    "'{name}' has shape {:?}, the backbone needs {:?} (another architecture?)",
                    v.shape,
                    g.shape(t)
                )));
            }
            self.plan.write(t, &v.data)?;
        }
        Ok(())
    }

    /// PyTorch-style random initialisation (the `--random-init` baseline).
    pub fn init_random(&self, seed: u64) -> Result<()> {
        let g = self.plan.graph();
        let mut rng = crate::rng::Rng::new(seed);
        for (name, t) in g.named(Kind::Parameter).into_iter().chain(g.named(Kind::Buffer)) {
            let shape = g.shape(t);
            let n = g.info(t).len();
            let data: Vec<f32> = if shape.len() == 4 {
                let std = (2.0 / (shape[0] * shape[2] * shape[3]) as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            } else {
                vec![if name.ends_with("running_var") || name.ends_with(".weight") { 1.0 } else { 0.0 }; n]
            };
            self.plan.write(t, &data)?;
        }
        Ok(())
    }

    /// L2-normalised features [len, dim] of every image (resized whole to the input size).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn extract(&self, ds: &crate::data::Dataset) -> Result<Vec<f32>> {
        pollster::block_on(self.extract_dataset(ds))
    }

    /// `extract`, awaiting the GPU (the browser). Images are read a batch at a time.
    pub async fn extract_dataset(&self, ds: &crate::data::Dataset) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ds.len() * self.dim);
        let per = 3 * self.size * self.size;
        for start in (0..ds.len()).step_by(self.batch) {
            let end = (start + self.batch).min(ds.len());
            let mut x = vec![0.0f32; self.batch * per];
            for i in start..end {
                let k = i - start;
                x[k * per..(k + 1) * per].copy_from_slice(&augment::eval_view(&*ds.image(i)?, self.size));
            }
            self.plan.write(self.input, &x)?;
            self.plan.step()?;
            let f = self.plan.read(self.feat).await?;
            for row in f.chunks(self.dim).take(end - start) {
                let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                out.extend(row.iter().map(|v| v / n));
            }
        }
        Ok(out)
    }
}

/// Weighted k-NN top-1 accuracy (%) of `test` against `train` (both L2-normalised rows).
#[allow(clippy::too_many_arguments)]
pub fn knn_top1(
    train: &[f32],
    train_labels: &[u32],
    test: &[f32],
    test_labels: &[u32],
    dim: usize,
    k: usize,
    temperature: f32,
    classes: usize,
) -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    use rayon::prelude::*;
    let k = k.min(train_labels.len()).max(1);
    // One thread in the browser.
    #[cfg(not(target_arch = "wasm32"))]
    let rows = test.par_chunks(dim).zip(test_labels.par_iter());
    #[cfg(target_arch = "wasm32")]
    let rows = test.chunks(dim).zip(test_labels.iter());
    let correct: usize = rows
        .map(|(q, &label)| {
            let mut sims: Vec<(f32, u32)> = train
                .chunks(dim)
                .zip(train_labels)
                .map(|(t, &l)| (q.iter().zip(t).map(|(a, b)| a * b).sum::<f32>(), l))
                .collect();
            sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            let mut votes = vec![0.0f64; classes];
            for &(s, l) in &sims[..k] {
                votes[l as usize] += ((s / temperature) as f64).exp();
            }
            let pred = votes.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0);
            (pred == label) as usize
        })
        .sum();
    100.0 * correct as f64 / test_labels.len().max(1) as f64
}

#[cfg(not(target_arch = "wasm32"))]
/// A linear classifier on frozen features, trained on the GPU with the library's own ops
/// (linear, cross-entropy, backward, SGD with momentum, cosine learning rate); returns the
/// test top-1 (%).
#[allow(clippy::too_many_arguments)]
pub fn linear_probe(
    gpu: Arc<Gpu>,
    train: &[f32],
    train_labels: &[u32],
    test: &[f32],
    test_labels: &[u32],
    dim: usize,
    classes: usize,
    epochs: usize,
    seed: u64,
) -> Result<f64> {
    let batch = 256.min(train_labels.len());
    let mut g = Graph::new();
    let x = g.input("x", &[batch, dim])?;
    let q = g.input("q", &[batch, classes])?;
    let w = g.parameter("fc.weight", &[classes, dim])?;
    let b = g.parameter("fc.bias", &[classes])?;
    let z = g.linear(x, w, Some(b))?;
    let ce = g.cross_entropy(z, q, 1.0)?;
    let loss = g.mean(ce)?;
    g.keep(loss, "loss");
    g.keep(z, "logits");
    g.backward(loss)?;
    let opt = g.optimizer(
        &crate::optim::OptimizerConfig {
            kind: crate::optim::OptimizerKind::Sgd,
            weight_decay: 0.0,
            momentum: 0.9,
            trust: 0.0,
            exclude_bias_and_bn: false,
            loss_scaling: false,
        },
        loss,
        &[],
    )?;
    let plan = Plan::compile(&g, gpu.clone())?;
    for (_, t) in g.named(Kind::Parameter).into_iter().chain(g.named(Kind::Buffer)) {
        plan.write(t, &vec![0.0; g.info(t).len()])?;
    }
    let iters_per_epoch = train_labels.len() / batch;
    let total = epochs.saturating_mul(iters_per_epoch).max(1);
    let schedule =
        crate::optim::LrSchedule { base: 1.0, final_lr: 0.0, start_warmup: 1.0, warmup_iters: 0, total_iters: total };
    let mut it = 0;
    for epoch in 0..epochs {
        let order = crate::data::loader::epoch_order(train_labels.len(), seed, epoch);
        for step in 0..iters_per_epoch {
            let idx = &order[step * batch..(step + 1) * batch];
            let xb: Vec<f32> = idx.iter().flat_map(|&i| train[i * dim..(i + 1) * dim].iter().copied()).collect();
            let mut qb = vec![0.0f32; batch * classes];
            for (r, &i) in idx.iter().enumerate() {
                qb[r * classes + train_labels[i] as usize] = 1.0;
            }
            plan.write(x, &xb)?;
            plan.write(q, &qb)?;
            plan.write(opt.state, &crate::optim::step_state(schedule.at(it.min(total - 1)), it, 0).to_values())?;
            plan.step()?;
            it += 1;
        }
    }
    // Predict with the trained weights: the logits of a forward pass (learning rate 0).
    plan.write(opt.state, &crate::optim::step_state(0.0, it, 0).to_values())?;
    let mut correct = 0;
    for (chunk, labels) in test.chunks(batch * dim).zip(test_labels.chunks(batch)) {
        let mut xb = chunk.to_vec();
        xb.resize(batch * dim, 0.0);
        plan.write(x, &xb)?;
        plan.write(q, &vec![0.0; batch * classes])?;
        plan.step()?;
        let logits = plan.read_blocking(z)?;
        for (row, &l) in logits.chunks(classes).zip(labels) {
            let pred = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0);
            correct += (pred == l) as usize;
        }
    }
    Ok(100.0 * correct as f64 / test_labels.len().max(1) as f64)
}
