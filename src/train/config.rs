//! The training configuration: every knob of a run, readable from TOML (`--config`), saved
//! in the run directory and in every checkpoint.
use serde::{Deserialize, Serialize};

use crate::data::augment::CropConfig;
use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::model::{Arch, BackboneConfig, HeadConfig, Stem};
use crate::optim::{LossScale, OptimizerConfig, OptimizerKind};
use crate::swav::SwavConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// resnet18, resnet34 or resnet50.
    pub arch: Arch,
    /// Width multiplier of every layer.
    pub width: f32,
    /// "cifar" (3x3/1, no max-pool) or "imagenet" (7x7/2 + max-pool).
    pub stem: Stem,
    /// Hidden width of the projection head (0 = a single linear layer).
    pub hidden_mlp: usize,
    /// Embedding dimension D.
    pub feat_dim: usize,
    /// Number of prototypes K.
    pub prototypes: usize,
    /// Images per step on each rank (a data-parallel job's global batch is world x this).
    pub batch_size: usize,
    pub crops: Vec<CropConfig>,
    pub crops_for_assign: Vec<usize>,
    pub temperature: f32,
    pub epsilon: f32,
    pub sinkhorn_iterations: usize,
    /// Queue rows per assignment crop (0 = none) over the whole job: each of a data-parallel
    /// job's ranks keeps queue_length / world, rounded down to a multiple of batch_size.
    pub queue_length: usize,
    pub epoch_queue_starts: usize,
    pub epochs: usize,
    /// Base learning rate (after warm-up).
    pub lr: f64,
    pub final_lr: f64,
    pub start_warmup: f64,
    pub warmup_epochs: f64,
    pub freeze_prototypes_niters: usize,
    /// "lars" (SGD inside apex LARC), "sgd" or "adam".
    pub optimizer: OptimizerKind,
    pub weight_decay: f32,
    pub momentum: f32,
    pub trust_coefficient: f32,
    /// Biases and batch-norm parameters skip LARS and weight decay (solo-learn).
    pub exclude_bias_and_bn: bool,
    /// Loss scaling as PyTorch's GradScaler (`--loss-scale`): "off", "dynamic" (from 65536,
    /// halved on a step whose gradients are not finite, which is skipped, and doubled after
    /// `loss_scale_growth_interval` clean steps) or a fixed scale. Default: `LossScale::default()`.
    pub loss_scale: LossScale,
    /// Clean steps in a row after which a dynamic loss scale doubles (GradScaler: 2000).
    pub loss_scale_growth_interval: usize,
    /// Data-parallel jobs: batch-norm statistics over every rank's batch (else each rank
    /// normalises its own, as the official recipe without SyncBatchNorm).
    pub sync_bn: bool,
    /// How activations and their gradients are stored: f32, f16 (half the bytes; weights,
    /// optimizer state, statistics, scores, Sinkhorn and the loss stay f32) or auto (the
    /// adapter's faster, measured; a run records what it chose). Runs from before this key: f32.
    #[serde(default)]
    pub precision: Precision,
    pub seed: u64,
    /// Colour-jitter strength s (brightness, contrast, saturation s; hue: `hue`), applied with
    /// probability 0.8 (official: 0.8).
    pub color_jitter: f64,
    /// Largest hue shift of the colour jitter, as a fraction of the colour wheel (official
    /// 0.2 = 0.25 x strength 0.8; 0.5 = any hue).
    pub hue: f64,
    /// Probability of the Gaussian blur (official: 0.5) and of grayscale (official: 0.2).
    pub blur_probability: f64,
    pub gray_probability: f64,
    /// The training data of the run as an absolute path (None = the built-in dataset), so
    /// `--resume` trains on what the run started on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The labelled held-out data of the run (`--test-data`), as an absolute path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_data: Option<String>,
    /// Shorter side, in pixels, photo folders are decoded to (their dataset cache's
    /// resolution); 0 = follow the crops (`image_side`). A run records the number it used.
    /// Runs from before this key decoded at 64.
    #[serde(default = "legacy_max_side")]
    pub max_side: usize,
    /// Where the run's dataset caches live (None = the user's cache folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
}

/// How a run stores activations (`--precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
    /// The faster of the two on the adapter, measured when the run starts (f32 where the
    /// adapter has no shader-f16).
    Auto,
}

impl Precision {
    /// The element type of the backbone's activations; `auto` must be resolved first
    /// (`run::precision::resolve`, which needs the adapter).
    pub fn storage(self) -> Result<DType> {
        match self {
            Precision::F32 => Ok(DType::F32),
            Precision::F16 => Ok(DType::F16),
            Precision::Auto => Err(Error::Invalid(
                "precision auto is chosen on the adapter when the run starts; build the graph after resolving it"
                    .into(),
            )),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Auto => "auto",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            "auto" => Ok(Precision::Auto),
            other => Err(Error::Invalid(format!("unknown precision '{other}': use f32, f16 or auto"))),
        }
    }
}

fn legacy_max_side() -> usize {
    64
}

/// The working resolution of photos for crops up to `largest` px: ImageNet's usual ratio
/// (a 224-px crop from a 256-px image, 8/7), and never below 64 (small crops still see detail
/// a 32-px image has lost: ../shared/notes/QUALITY.md, "Resolution helps").
pub fn image_side_for_crop(largest: usize) -> usize {
    (largest * 8).div_ceil(7).max(64)
}

impl Default for TrainConfig {
    /// The official recipe's structure at CIFAR scale; `swav-wgpu train` overrides the small-
    /// data defaults it has verified (see the README).
    fn default() -> Self {
        TrainConfig {
            arch: Arch::ResNet18,
            width: 0.25,
            stem: Stem::Cifar,
            hidden_mlp: 512,
            feat_dim: 128,
            prototypes: 100,
            batch_size: 64,
            crops: vec![
                CropConfig { count: 2, size: 32, min_scale: 0.14, max_scale: 1.0 },
                CropConfig { count: 4, size: 16, min_scale: 0.05, max_scale: 0.14 },
            ],
            crops_for_assign: vec![0, 1],
            temperature: 0.1,
            epsilon: 0.05,
            sinkhorn_iterations: 3,
            queue_length: 0,
            epoch_queue_starts: 0,
            epochs: 20,
            lr: 0.15,
            final_lr: 0.00015,
            start_warmup: 0.0,
            warmup_epochs: 1.0,
            freeze_prototypes_niters: 0,
            optimizer: OptimizerKind::Lars,
            weight_decay: 1e-6,
            momentum: 0.9,
            trust_coefficient: 0.001,
            exclude_bias_and_bn: false,
            loss_scale: LossScale::default(),
            loss_scale_growth_interval: crate::optim::GROWTH_INTERVAL,
            sync_bn: false,
            precision: Precision::F32,
            seed: 0,
            color_jitter: 0.8,
            hue: 0.2,
            blur_probability: 0.5,
            gray_probability: 0.2,
            data: None,
            test_data: None,
            max_side: 0,
            cache_dir: None,
        }
    }
}

/// The largest sizes a config may ask for. Each is far beyond any run a GPU holds; with
/// `MAX_TENSOR_VALUES` they keep every number computed from them (tensor shapes, byte counts,
/// iteration counts) far from overflowing, so that a mistyped flag is an error naming it.
pub const MAX_EPOCHS: usize = 1_000_000;
/// SwAV's widest published backbone is ResNet-50 x5; x16 already has ~6 billion parameters.
pub const MAX_WIDTH: f32 = 16.0;
/// Crops per image over all groups (the official multi-crop recipe has 8).
pub const MAX_CROPS: usize = 64;
pub const MAX_SINKHORN_ITERATIONS: usize = 1000;
/// Values one tensor of a training step may hold: 2^32 (16 GiB of float32), four times the
/// largest storage binding adapters offer (4 GiB); a smaller tensor that does not fit the
/// adapter is refused when the step is compiled, naming the limit.
pub const MAX_TENSOR_VALUES: u128 = 1 << 32;

/// The product of sizes, saturating (u128: no product of a few usizes reaches it).
fn product(factors: &[usize]) -> u128 {
    factors.iter().fold(1u128, |p, &f| p.saturating_mul(f as u128))
}

impl TrainConfig {
    pub fn n_crops(&self) -> usize {
        self.crops.iter().map(|c| c.count).sum()
    }

    /// The shorter side photo folders are decoded to: `max_side`, else what the largest crop
    /// needs (`image_side_for_crop`).
    pub fn image_side(&self) -> usize {
        match self.max_side {
            0 => image_side_for_crop(self.crops.iter().map(|c| c.size).max().unwrap_or(32)),
            n => n,
        }
    }

    pub fn backbone(&self) -> Result<BackboneConfig> {
        // Unresolved `auto` (eval and embed read configs without training): f32, which every
        // adapter runs; a trainer refuses an unresolved auto (`precision::check`).
        let storage = if self.precision == Precision::Auto { DType::F32 } else { self.precision.storage()? };
        Ok(BackboneConfig { arch: self.arch, width: self.width, stem: self.stem, storage })
    }

    pub fn head(&self) -> HeadConfig {
        HeadConfig { hidden: self.hidden_mlp, dim: self.feat_dim, prototypes: self.prototypes }
    }

    /// Forward FLOPs per image over all of this recipe's crops (`model::forward_flops_per_image`).
    pub fn forward_flops_per_image(&self) -> Result<f64> {
        let crops: Vec<(usize, usize)> = self.crops.iter().map(|c| (c.count, c.size)).collect();
        crate::model::forward_flops_per_image(&self.backbone()?, &self.head(), &crops)
    }

    pub fn swav(&self) -> SwavConfig {
        self.swav_for(1)
    }

    /// The objective on one rank of a world of `world`: its share of the queue.
    pub fn swav_for(&self, world: usize) -> SwavConfig {
        SwavConfig {
            batch: self.batch_size,
            n_crops: self.n_crops(),
            crops_for_assign: self.crops_for_assign.clone(),
            temperature: self.temperature,
            epsilon: self.epsilon,
            sinkhorn_iterations: self.sinkhorn_iterations,
            queue_length: self.queue_length / world.max(1),
            world: world.max(1),
        }
    }

    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            trust: self.trust_coefficient,
            exclude_bias_and_bn: self.exclude_bias_and_bn,
            loss_scaling: self.loss_scale.is_on(),
        }
    }

    /// Every impossible setting, named.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.batch_size < 2 {
            return bad(format!(
                "batch size must be at least 2 (batch-norm needs two samples), got {}",
                self.batch_size
            ));
        }
        if !(self.width > 0.0 && self.width <= MAX_WIDTH) {
            return bad(format!("width (--width) must be a number in (0, {MAX_WIDTH}], got {}", self.width));
        }
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return bad(format!("epochs (--epochs) must be 1 to {MAX_EPOCHS}, got {}", self.epochs));
        }
        self.validate_crops()?;
        if !((0.0..=0.5).contains(&self.hue) && self.color_jitter.is_finite() && self.color_jitter >= 0.0) {
            return bad(format!(
                "hue must be in [0, 0.5] and color_jitter >= 0, got {} and {}",
                self.hue, self.color_jitter
            ));
        }
        if self.prototypes < 2 || self.feat_dim == 0 {
            return bad(format!(
                "need >= 2 prototypes and a positive feat_dim, got {} and {}",
                self.prototypes, self.feat_dim
            ));
        }
        if !(1..=MAX_SINKHORN_ITERATIONS).contains(&self.sinkhorn_iterations) {
            return bad(format!(
                "sinkhorn_iterations must be 1 to {MAX_SINKHORN_ITERATIONS}, got {}",
                self.sinkhorn_iterations
            ));
        }
        self.check_tensor_sizes()?;
        self.validate_numbers()
    }

    /// The crops: counts, sizes, scales, and the crops Sinkhorn assigns codes from.
    fn validate_crops(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.crops.is_empty() || self.crops.iter().any(|c| c.count == 0 || c.size < 4) {
            return bad(format!("crops need a count >= 1 and a size >= 4 px each: {:?}", self.crops));
        }
        // Images are decoded to at most 10000 px a side (data::decode::MAX_DECODE_SIDE).
        if self.crops.iter().any(|c| c.size > 10_000) || self.max_side > 10_000 {
            return bad(format!(
                "crop sizes (--crops) and max_side (--max-side) are at most 10000 px, got crops {:?} and max_side {}",
                self.crops.iter().map(|c| c.size).collect::<Vec<_>>(),
                self.max_side
            ));
        }
        if self.crops.iter().try_fold(0usize, |n, c| n.checked_add(c.count)).is_none_or(|n| n > MAX_CROPS) {
            return bad(format!(
                "crops (--crops) may have at most {MAX_CROPS} crops per image in all, got counts {:?}",
                self.crops.iter().map(|c| c.count).collect::<Vec<_>>()
            ));
        }
        for c in &self.crops {
            if !(0.0 < c.min_scale && c.min_scale <= c.max_scale && c.max_scale <= 1.0) {
                return bad(format!(
                    "crop scale range must satisfy 0 < min <= max <= 1, got ({}, {})",
                    c.min_scale, c.max_scale
                ));
            }
        }
        if self.n_crops() < 2 {
            return bad("SwAV needs at least 2 crops per image".into());
        }
        if self.crops_for_assign.is_empty()
            || self.crops_for_assign.iter().any(|&c| c >= self.n_crops())
            || self.crops_for_assign.len() > crate::swav::MAX_ASSIGN_CROPS
        {
            return bad(format!(
                "crops_for_assign {:?} must name 1 to {} of the {} crops",
                self.crops_for_assign,
                crate::swav::MAX_ASSIGN_CROPS,
                self.n_crops()
            ));
        }
        Ok(())
    }

    /// The optimisation numbers and augmentation probabilities, each by name.
    fn validate_numbers(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        // Every number by name, with its value (a NaN is reported as NaN).
        let positive = [("temperature", self.temperature as f64), ("epsilon", self.epsilon as f64)];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be a finite number > 0, got {v}"));
            }
        }
        let non_negative = [
            ("lr", self.lr),
            ("final_lr", self.final_lr),
            ("start_warmup", self.start_warmup),
            ("warmup_epochs", self.warmup_epochs),
            ("weight_decay", self.weight_decay as f64),
            ("momentum", self.momentum as f64),
            ("trust_coefficient", self.trust_coefficient as f64),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        for (name, p) in [("blur_probability", self.blur_probability), ("gray_probability", self.gray_probability)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1], got {p}"));
            }
        }
        if let LossScale::Fixed(s) = self.loss_scale {
            LossScale::fixed(s as f64).map_err(|e| Error::Invalid(format!("loss_scale (--loss-scale): {e}")))?;
        }
        if self.loss_scale_growth_interval == 0 {
            return bad("loss_scale_growth_interval must be at least 1".into());
        }
        Ok(())
    }

    /// The largest tensors of a training step, from the sizes alone (before a graph is built
    /// with them): each at most `MAX_TENSOR_VALUES`, else an error naming the keys and flags
    /// to lower. Expects the width, crop and prototype checks of `validate` to have passed.
    fn check_tensor_sizes(&self) -> Result<()> {
        let (b, n_crops) = (self.batch_size, self.n_crops());
        let bb = BackboneConfig { arch: self.arch, width: self.width, stem: self.stem, storage: DType::F32 };
        let (stem, expansion) = (bb.scaled(64), bb.expansion());
        let mut tensors: Vec<(String, u128, &str)> = Vec::new();
        for c in &self.crops {
            // The first layers at full resolution hold the most values of the backbone: the
            // stem's convolution and layer 1 (after the stem's strides).
            let (conv_side, layer1_side) = match self.stem {
                Stem::Cifar => (c.size, c.size),
                Stem::CifarPool => (c.size, c.size.div_ceil(2)),
                Stem::ImageNet => (c.size.div_ceil(2), c.size.div_ceil(4)),
            };
            let first = product(&[b, c.count, 3, c.size, c.size])
                .max(product(&[b, c.count, stem, conv_side, conv_side]))
                .max(product(&[b, c.count, stem * expansion, layer1_side, layer1_side]));
            tensors.push((
                format!("the first layers of crops {}x{} at batch_size {b} and width {}", c.count, c.size, self.width),
                first,
                "batch_size (--batch-size), crops (--crops) or width (--width)",
            ));
        }
        let features = bb.feature_dim();
        let widest = features.max(self.hidden_mlp).max(self.feat_dim).max(self.prototypes);
        let head = [
            ("the head's hidden layer", product(&[features, self.hidden_mlp]), "hidden_mlp (--hidden-mlp)"),
            (
                "the head's output layer",
                product(&[if self.hidden_mlp > 0 { self.hidden_mlp } else { features }, self.feat_dim]),
                "feat_dim (--feat-dim) or hidden_mlp (--hidden-mlp)",
            ),
            ("the prototypes", product(&[self.prototypes, self.feat_dim]), "prototypes (--prototypes) or feat_dim (--feat-dim)"),
            (
                "the head's activations",
                product(&[b, n_crops, widest]),
                "batch_size (--batch-size), hidden_mlp (--hidden-mlp), feat_dim (--feat-dim) or prototypes (--prototypes)",
            ),
            (
                "the queue",
                product(&[self.queue_length, self.feat_dim.max(self.prototypes)]),
                "queue_length (--queue-length)",
            ),
        ];
        tensors.extend(head.into_iter().map(|(what, n, flags)| (what.to_string(), n, flags)));
        for (what, n, flags) in tensors {
            if n > MAX_TENSOR_VALUES {
                let n = if n == u128::MAX { "more than 2^128".to_string() } else { format!("{n:.1e}", n = n as f64) };
                return Err(Error::Invalid(format!(
                    "{what} would hold {n} values in one tensor, more than the 2^32 (16 GiB of float32) a step may hold: lower {flags}"
                )));
            }
        }
        Ok(())
    }

    pub fn augment(&self) -> crate::data::augment::AugmentConfig {
        let mut a = crate::data::augment::AugmentConfig::new(&self.crops);
        a.jitter_strength = self.color_jitter;
        a.hue = self.hue;
        a.p_blur = self.blur_probability;
        a.p_gray = self.gray_probability;
        a
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn from_toml(text: &str) -> Result<TrainConfig> {
        toml::from_str(text).map_err(|e| Error::Invalid(format!("invalid config: {e}")))
    }

    /// This config with the keys of a TOML text over it (keys the text lacks keep their
    /// values): what `train --config FILE` does to the defaults.
    pub fn with_toml(&self, text: &str) -> Result<TrainConfig> {
        let mut base = toml::Table::try_from(self).map_err(|e| Error::Invalid(e.to_string()))?;
        let user: toml::Table = text.parse().map_err(|e| Error::Invalid(format!("invalid config: {e}")))?;
        base.extend(user);
        TrainConfig::from_toml(&base.to_string())
    }
}

/// The defaults of `swav-wgpu train`, chosen for small images and small data on a software
/// adapter, and measured on the built-in dataset (k-NN top-1 after a default run vs the
/// untrained network: README, "Status and limits"):
/// - The official recipe collapses at this scale (loss locked at ln K within one epoch, also
///   measured in PyTorch: ../shared/notes/QUALITY.md). Many more prototypes than embedding
///   dimensions (K 256, D 16), kept frozen, make the collapse expensive.
/// - Adam (lightly's small-data choice) at 3e-3 leaves the early loss plateau reliably; SGD
///   escaped it late or not at all (configs/README.md).
/// - Colour: brightness / contrast / saturation 0.8 as the official recipe but any hue (0.5),
///   and no blur (a 2-px blur erases a 32-px shape); strength 1.0 left many crops blank.
/// - ResNet-18 x 0.25 with the ImageNet stem (the 32-px input is 8x8 after the stem) runs
///   ~3.5x faster than x 0.125 with the CIFAR stem, so 10 epochs fit in a few minutes.
pub fn small_data_defaults() -> TrainConfig {
    TrainConfig {
        arch: Arch::ResNet18,
        width: 0.25,
        stem: Stem::ImageNet,
        hidden_mlp: 128,
        feat_dim: 16,
        prototypes: 256,
        batch_size: 64,
        crops: vec![CropConfig { count: 2, size: 32, min_scale: 0.3, max_scale: 1.0 }],
        epochs: 10,
        lr: 3e-3,
        final_lr: 3e-5,
        start_warmup: 0.0,
        warmup_epochs: 0.5,
        freeze_prototypes_niters: usize::MAX / 2,
        optimizer: OptimizerKind::Adam,
        weight_decay: 1e-6,
        exclude_bias_and_bn: true,
        color_jitter: 0.8,
        hue: 0.5,
        gray_probability: 0.2,
        blur_probability: 0.0,
        ..TrainConfig::default()
    }
}

/// The defaults of `swav-wgpu train --data X` on natural images, chosen by a recipe search on
/// CIFAR-10 (configs/README.md has every recipe tried, with numbers): lightly's CIFAR-10
/// recipe (Adam 5e-4, cosine to 0, no warm-up, head 512-512-128, 512 prototypes learned from
/// step 0, crops 2x32 of scale 0.14-1, jitter 0.5 / hue 0.1, no blur) with two changes:
/// - Sinkhorn epsilon 0.03 instead of 0.05: at batch 64 with 512 prototypes the softer codes
///   of 0.05 let the loss lock at ln K within the first epoch (uniform codes, features below
///   random ones); 0.03 keeps the codes informative from the start.
/// - The `cifar_pool` stem (3x3/1 conv + max-pool: the stages run at 16x16, not 8x8, and the
///   last one at 2x2, not 1x1) at width 0.23, 2.8x the forward FLOPs of x0.25 with the ImageNet
///   stem: resolution moved k-NN most at a fixed budget, then capacity (x0.4 with the ImageNet
///   stem, 2.4x, gained less); temperature, prototype count, lr, stronger colour and small
///   crops did not.
pub fn natural_image_defaults() -> TrainConfig {
    TrainConfig {
        arch: Arch::ResNet18,
        width: 0.23,
        stem: Stem::CifarPool,
        hidden_mlp: 512,
        feat_dim: 128,
        prototypes: 512,
        batch_size: 64,
        crops: vec![CropConfig { count: 2, size: 32, min_scale: 0.14, max_scale: 1.0 }],
        epochs: 10,
        optimizer: OptimizerKind::Adam,
        lr: 5e-4,
        final_lr: 0.0,
        start_warmup: 0.0,
        warmup_epochs: 0.0,
        weight_decay: 1e-6,
        exclude_bias_and_bn: false,
        freeze_prototypes_niters: 0,
        color_jitter: 0.5,
        hue: 0.1,
        gray_probability: 0.2,
        blur_probability: 0.0,
        queue_length: 0,
        temperature: 0.1,
        epsilon: 0.03,
        sinkhorn_iterations: 3,
        ..TrainConfig::default()
    }
}
