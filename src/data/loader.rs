//! Batches of augmented multi-crops, prepared on CPU worker threads (rayon) while the GPU runs
//! the previous step. Deterministic: sample i of epoch e always gets the crops of the random
//! stream (seed, e, i), whatever the thread count, so a resumed run sees the same data.
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::augment::{multicrop, AugmentConfig};
use super::Dataset;
use crate::error::Result;
use crate::rng::Rng;

/// One batch: for each crop position, the crops of every sample ([batch, 3, size, size]).
pub struct Batch {
    pub crops: Vec<Vec<f32>>,
    pub iteration: usize,
}

pub use super::epoch_order;

/// The crops of samples `indices` of epoch `epoch`, each sample read and augmented on a worker
/// thread, grouped by crop position.
pub fn make_batch(
    ds: &Dataset,
    indices: &[usize],
    cfg: &AugmentConfig,
    seed: u64,
    epoch: usize,
) -> Result<Vec<Vec<f32>>> {
    let per_sample: Vec<Vec<Vec<f32>>> = indices
        .par_iter()
        .map(|&i| Ok(multicrop(&*ds.image(i)?, cfg, &mut Rng::derive(seed, epoch as u64 + 1, i as u64))))
        .collect::<Result<_>>()?;
    let n_crops = per_sample.first().map_or(0, |s| s.len());
    Ok((0..n_crops).map(|c| per_sample.iter().flat_map(|s| s[c].iter().copied()).collect()).collect())
}

/// Which part of every global batch a rank trains on: rank r takes images
/// [r * batch, (r + 1) * batch) of each run of world * batch in the epoch's order (one
/// permutation shared by all ranks, as PyTorch's DistributedSampler), so the ranks together
/// see exactly the batches one process with world * batch would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankSlice {
    pub rank: usize,
    pub world: usize,
}

impl RankSlice {
    pub const ALL: RankSlice = RankSlice { rank: 0, world: 1 };
}

/// Produces the batches of iterations [start, end) in a background thread, two ahead; a
/// sample that cannot be read ends the stream with its error.
pub struct Prefetcher {
    rx: Receiver<Result<Batch>>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn new(
        ds: Arc<Dataset>,
        cfg: AugmentConfig,
        batch: usize,
        seed: u64,
        start: usize,
        end: usize,
        slice: RankSlice,
    ) -> Prefetcher {
        let (tx, rx) = sync_channel(2);
        let global = batch * slice.world.max(1);
        let per_epoch = (ds.len() / global).max(1);
        let handle = std::thread::spawn(move || {
            let mut order_epoch = usize::MAX;
            let mut order = Vec::new();
            for it in start..end {
                let epoch = it / per_epoch;
                if epoch != order_epoch {
                    order = epoch_order(ds.len(), seed, epoch);
                    order_epoch = epoch;
                }
                let pos = (it % per_epoch) * global + slice.rank * batch;
                let batch = make_batch(&ds, &order[pos..pos + batch], &cfg, seed, epoch)
                    .map(|crops| Batch { crops, iteration: it });
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return; // the consumer stopped, or the data did
                }
            }
        });
        Prefetcher { rx, handle: Some(handle) }
    }

    /// The next batch; None once the range is done.
    pub fn next(&self) -> Option<Result<Batch>> {
        self.rx.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Unblock the producer by dropping the receiver first, then join.
        let (_, dummy) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, dummy));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
