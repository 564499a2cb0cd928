//! Checkpoints (safetensors, written atomically) that resume a run exactly, and the export of
//! the backbone alone with torchvision key names.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::{TrainConfig, Trainer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::{self, OutTensor};

/// Version 2 seals its metadata with a checksum (`io::METADATA_CHECKSUM_KEY`); version 1
/// checkpoints (tensors checksummed only) still load.
pub const FORMAT: &str = "swav-wgpu-checkpoint/2";
const FORMAT_V1: &str = "swav-wgpu-checkpoint/1";

/// The SwAV queues (`queue.0`, ...): per rank in a data-parallel job.
fn is_queue(name: &str) -> bool {
    name.strip_prefix("queue.").is_some_and(|i| i.parse::<usize>().is_ok())
}

/// What a checkpoint says about the run besides the tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointMeta {
    pub iteration: usize,
    pub iters_per_epoch: usize,
    pub config: TrainConfig,
    /// The data pipeline's RNG state, so a resumed run draws the same crops.
    pub rng_state: u64,
    /// Anything else the caller stored (e.g. metrics).
    pub extra: HashMap<String, String>,
}

impl Trainer {
    /// Writes every parameter, buffer, momentum and queue, the iteration, the RNG state, the
    /// loss scaler's state (with loss scaling) and the config, atomically.
    ///
    /// In a data-parallel job every rank calls it (the ranks' queues differ: each `queue.i`
    /// is saved as all ranks' rows one after another, rank order) and rank 0 writes.
    pub fn save_checkpoint(&self, path: &Path, rng_state: u64, extra: &HashMap<String, String>) -> Result<()> {
        let mut state = self.state_blocking()?;
        let world = self.collective.world();
        if world > 1 {
            for (name, t) in state.iter_mut() {
                if is_queue(name) {
                    t.data = self.collective.all_gather(&t.data)?;
                    t.shape[0] *= world;
                }
            }
            if self.collective.rank() != 0 {
                return Ok(());
            }
        }
        let tensors: BTreeMap<String, OutTensor> =
            state.into_iter().map(|(k, v)| (k, OutTensor::F32 { shape: v.shape, data: v.data })).collect();
        let mut meta = extra.clone();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("iteration".into(), self.iteration.to_string());
        meta.insert("iters_per_epoch".into(), self.iters_per_epoch.to_string());
        meta.insert("rng_state".into(), rng_state.to_string());
        meta.insert("world".into(), world.to_string());
        meta.extend(self.scaler.to_meta());
        meta.insert("config".into(), self.cfg.to_toml());
        io::save_safetensors_atomic(path, &tensors, meta)
    }

    /// Reads a checkpoint's metadata (to build the trainer it needs).
    pub fn checkpoint_meta(path: &Path) -> Result<CheckpointMeta> {
        let mut meta = io::read_metadata(path)?;
        let bad = |what: &str| Error::Invalid(format!("'{}' is not a swav-wgpu checkpoint ({what})", path.display()));
        match meta.get("format").map(String::as_str) {
            // read_metadata checked the metadata checksum; version 2 must have one.
            Some(FORMAT) if !meta.contains_key(io::METADATA_CHECKSUM_KEY) => {
                return Err(Error::Invalid(format!(
                    "'{}': its metadata has lost its checksum: the file is damaged or was edited; use an earlier copy",
                    path.display()
                )));
            }
            Some(FORMAT | FORMAT_V1) => {}
            _ => return Err(bad("no or unknown format tag")),
        }
        let num = |meta: &HashMap<String, String>, k: &str| -> Result<u64> {
            meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| bad(&format!("missing {k}")))
        };
        let iteration = num(&meta, "iteration")? as usize;
        let iters_per_epoch = num(&meta, "iters_per_epoch")? as usize;
        let rng_state = num(&meta, "rng_state")?;
        let config = TrainConfig::from_toml(meta.get("config").ok_or_else(|| bad("missing config"))?)
            .map_err(|e| Error::Invalid(format!("'{}': its config: {e}", path.display())))?;
        for k in [
            "format",
            "iteration",
            "iters_per_epoch",
            "rng_state",
            "config",
            io::CHECKSUM_KEY,
            io::METADATA_CHECKSUM_KEY,
        ] {
            meta.remove(k);
        }
        Ok(CheckpointMeta { iteration, iters_per_epoch, config, rng_state, extra: meta })
    }

    /// Loads the tensors, iteration and loss scale of a checkpoint written for the same
    /// architecture.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<CheckpointMeta> {
        let meta = Self::checkpoint_meta(path)?;
        let mine = (
            &self.cfg.arch,
            self.cfg.width,
            &self.cfg.stem,
            self.cfg.hidden_mlp,
            self.cfg.feat_dim,
            self.cfg.prototypes,
        );
        let theirs = (
            &meta.config.arch,
            meta.config.width,
            &meta.config.stem,
            meta.config.hidden_mlp,
            meta.config.feat_dim,
            meta.config.prototypes,
        );
        if mine != theirs {
            return Err(Error::Invalid(format!(
                "checkpoint '{}' is for {} x{} ({} stem, head {}-{}, {} prototypes), this run is {} x{} ({} stem, head {}-{}, {} prototypes)",
                path.display(), theirs.0, theirs.1, theirs.2, theirs.3, theirs.4, theirs.5, mine.0, mine.1, mine.2, mine.3, mine.4, mine.5
            )));
        }
        let world = self.collective.world();
        let saved_world = meta.extra.get("world").and_then(|w| w.parse::<usize>().ok()).unwrap_or(1);
        if saved_world != world {
            return Err(Error::Invalid(format!(
                "checkpoint '{}' was written by a job of {saved_world} rank(s), this one has {world}: resume with the same number of ranks (each keeps its own share of the queue, and the batch per rank sets the global batch)",
                path.display()
            )));
        }
        let mut state = io::load_safetensors(path)?;
        if world > 1 {
            // This rank's rows of each queue.
            let rank = self.collective.rank();
            for (name, t) in state.iter_mut() {
                if is_queue(name) && !t.shape.is_empty() && t.shape[0] % world == 0 {
                    let rows = t.shape[0] / world;
                    let per = t.data.len() / world;
                    t.data = t.data[rank * per..(rank + 1) * per].to_vec();
                    t.shape[0] = rows;
                }
            }
        }
        for (name, t) in self
            .graph()
            .named(crate::graph::Kind::Parameter)
            .into_iter()
            .chain(self.graph().named(crate::graph::Kind::Buffer))
        {
            let v = state.get(&name).ok_or_else(|| {
                Error::Invalid(format!(
                    "checkpoint '{}' has no '{name}' (written by another configuration?)",
                    path.display()
                ))
            })?;
            if v.shape != self.graph().shape(t) {
                return Err(Error::Invalid(format!(
                    "checkpoint '{}': '{name}' has shape {:?}, the model needs {:?}",
                    path.display(),
                    v.shape,
                    self.graph().shape(t)
                )));
            }
            self.plan.write(t, &v.data)?;
        }
        self.scaler.restore(&meta.extra).map_err(|e| Error::Invalid(format!("'{}': {e}", path.display())))?;
        self.iteration = meta.iteration;
        Ok(meta)
    }

    /// Builds a trainer from a checkpoint alone (its config) and loads it.
    pub fn from_checkpoint(gpu: Arc<Gpu>, path: &Path) -> Result<(Trainer, CheckpointMeta)> {
        let meta = Self::checkpoint_meta(path)?;
        let mut t = Trainer::new(gpu, meta.config.clone(), meta.iters_per_epoch)?;
        let meta = t.load_checkpoint(path)?;
        Ok((t, meta))
    }

    /// The backbone alone, torchvision key names, f32 (and int64 `num_batches_tracked` for each
    /// batch-norm): `torchvision.models.resnet18(...).load_state_dict(sd, strict=False)`.
    /// Written atomically; its metadata holds the config (`backbone::CONFIG_KEY`).
    pub fn export_backbone(&self, path: &Path) -> Result<()> {
        io::write_file_atomic(path, &pollster::block_on(self.backbone_safetensors())?)
    }
}

pub use super::backbone::is_backbone_key;
