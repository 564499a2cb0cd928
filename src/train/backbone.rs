//! The backbone alone, as a safetensors file with torchvision key names: what `train` writes
//! as backbone.safetensors and the browser demo downloads. Its metadata carries the run's
//! config, so `swav-wgpu eval` and `embed` can build the network from the file alone.
use std::collections::{BTreeMap, HashMap};

use super::{TrainConfig, Trainer};
use crate::error::Result;
use crate::io::{self, OutTensor};

/// Whether a state-dict key belongs to the backbone (not the head, the optimizer or a queue).
pub fn is_backbone_key(name: &str) -> bool {
    !(name.starts_with("projection_head") || name.starts_with("prototypes") || crate::optim::is_run_state(name))
}

/// The metadata key holding the run's config (TOML) in a backbone file.
pub const CONFIG_KEY: &str = "config";

/// f32 tensors (and an int64 `num_batches_tracked` for each batch-norm, as torchvision has):
/// `torchvision.models.resnet18(...).load_state_dict(sd, strict=False)`.
pub fn backbone_bytes(
    state: &BTreeMap<String, io::NamedTensor>,
    batches_tracked: i64,
    cfg: &TrainConfig,
) -> Result<Vec<u8>> {
    let mut out = BTreeMap::new();
    for (name, t) in state.iter().filter(|(k, _)| is_backbone_key(k)) {
        out.insert(name.clone(), OutTensor::F32 { shape: t.shape.clone(), data: t.data.clone() });
        if let Some(base) = name.strip_suffix(".running_mean") {
            out.insert(
                format!("{base}.num_batches_tracked"),
                OutTensor::I64 { shape: vec![], data: vec![batches_tracked] },
            );
        }
    }
    let mut meta = HashMap::new();
    meta.insert("format".into(), "pt".into());
    meta.insert("producer".into(), "swav-wgpu backbone export (torchvision ResNet key names)".into());
    meta.insert(CONFIG_KEY.into(), cfg.to_toml());
    io::encode_safetensors(&out, meta)
}

impl Trainer {
    /// The current backbone as a safetensors file's bytes (see `backbone_bytes`).
    pub async fn backbone_safetensors(&self) -> Result<Vec<u8>> {
        let state = self.state().await?;
        backbone_bytes(&state, self.iteration as i64 * self.resolution_groups() as i64, &self.cfg)
    }

    /// How many backbone forward calls one step makes (one per run of equal crop sizes).
    pub fn resolution_groups(&self) -> usize {
        let mut sizes: Vec<usize> = self.cfg.crops.iter().map(|c| c.size).collect();
        sizes.dedup();
        sizes.len()
    }
}
