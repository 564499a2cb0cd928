//! What `swav-wgpu train` was asked to do, resolved into a config, a run folder and the
//! checkpoint to continue from: a new run (the defaults for its data, a `--config` file over
//! them, the flags over both) or a resumed one (its stored config and data, with the flags
//! that may change). The flags themselves are defined here, beside the rules that read them.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{Arch, Stem};
use crate::optim::{LossScale, OptimizerKind};
use crate::train::config::{natural_image_defaults, small_data_defaults, Precision};
use crate::train::{CropConfig, TrainConfig, Trainer};

mod resume;

/// How photo folders are decoded and cached.
#[derive(clap::Args, Default, Clone)]
pub struct ImageArgs {
    /// Shorter side, in pixels, photo folders are decoded to (the dataset cache's
    /// resolution). Default: 8/7 of the largest crop, at least 64 (256 for 224-px crops); a
    /// run's own with --resume, a checkpoint's with eval and embed. Images wider or taller
    /// than 10000 px, or needing more than 512 MiB to decode, are skipped.
    #[arg(long)]
    pub max_side: Option<usize>,
    /// Folder of the dataset caches (default: $XDG_CACHE_HOME/swav-wgpu/datasets, else
    /// ~/.cache/swav-wgpu/datasets). Data-parallel jobs on several machines: a shared folder.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(clap::Args, Default)]
pub struct ModelArgs {
    /// resnet18, resnet34 or resnet50.
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Width multiplier of every layer.
    #[arg(long)]
    pub width: Option<f32>,
    /// cifar (3x3/1, no pool), cifar_pool (3x3/1 + 3x3/2 max-pool) or imagenet (7x7/2 + max-pool).
    #[arg(long)]
    pub stem: Option<Stem>,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// CIFAR .bin file or folder of batches, ImageFolder tree (or train/ + test/), or a flat
    /// folder of images; the defaults become the natural-image recipe. Default: the built-in
    /// shapes dataset (with its own recipe); with --resume, the run's data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Labelled held-out data for the k-NN evaluation (CIFAR test_batch.bin, a folder).
    /// With --resume, the run's test data by default.
    #[arg(long)]
    pub test_data: Option<PathBuf>,
    /// Run directory: config.toml, checkpoint.safetensors, backbone.safetensors,
    /// metrics.jsonl, loss.svg. Default: runs/swav; with --resume, the run's folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A TOML file with any of the config keys (flags given here override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue a run from its checkpoint (a file, or the run folder). --epochs, --test-data,
    /// --cache-dir, --stop-at, --checkpoint-every and --eval-every apply (each said); a flag
    /// that would change the run's model, data or recipe is refused.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Crops per image as COUNTxSIZE groups, large first, e.g. 2x32,4x16.
    #[arg(long)]
    pub crops: Option<String>,
    #[arg(long)]
    pub prototypes: Option<usize>,
    #[arg(long)]
    pub feat_dim: Option<usize>,
    /// Hidden width of the projection head (0 = a single linear layer).
    #[arg(long)]
    pub hidden_mlp: Option<usize>,
    /// Queue rows per assignment crop (0 = no queue).
    #[arg(long)]
    pub queue_length: Option<usize>,
    #[arg(long)]
    pub epoch_queue_starts: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// lars, sgd or adam.
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    /// Loss scaling as PyTorch's GradScaler: off, dynamic (from 65536, halved on a step whose
    /// gradients are not finite, which is skipped, and doubled after
    /// loss_scale_growth_interval clean steps, 2000 by default), or S, a fixed scale (a number
    /// > 0). Default: off.
    #[arg(long)]
    pub loss_scale: Option<LossScale>,
    #[arg(long)]
    pub epsilon: Option<f32>,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub freeze_prototypes_niters: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Checkpoint every N iterations (default: every epoch).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Also run the k-NN evaluation every N epochs (default: only at the end).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    #[command(flatten)]
    pub images: ImageArgs,
    /// Checkpoint and stop once this many iterations are done, for jobs with a time limit
    /// (continue with --resume).
    #[arg(long)]
    pub stop_at: Option<usize>,
    /// Data-parallel jobs (mpirun/srun): batch-norm statistics over every rank's batch
    /// (else each rank normalises its own batch).
    #[arg(long)]
    pub sync_bn: bool,
    /// How activations and their gradients are stored: f32, f16 (half the memory; needs an
    /// adapter with shader-f16) or auto (the faster on this adapter, measured and said).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Faults the test suite injects (test builds only).
    #[cfg(feature = "test-hooks")]
    #[command(flatten)]
    pub faults: super::Faults,
}

/// The defaults a run starts from: the natural-image recipe for real data, the recipe
/// verified on the built-in shapes otherwise (README, "Training").
pub fn default_config(has_data: bool) -> TrainConfig {
    if has_data {
        natural_image_defaults()
    } else {
        small_data_defaults()
    }
}

pub fn recipe_name(has_data: bool) -> &'static str {
    if has_data {
        r#"natural-image defaults (configs/cifar10.toml; README "Training")"#
    } else {
        "built-in-data defaults"
    }
}

pub fn path_string(p: &Path) -> String {
    super::absolute_path(p).display().to_string()
}

pub fn parse_crops(spec: &str) -> Result<Vec<CropConfig>> {
    CropConfig::parse_groups(spec).map_err(|e| Error::Invalid(format!("--crops {e}")))
}

pub fn apply_model(cfg: &mut TrainConfig, m: &ModelArgs) {
    if let Some(v) = m.arch {
        cfg.arch = v;
    }
    if let Some(v) = m.width {
        cfg.width = v;
    }
    if let Some(v) = m.stem {
        cfg.stem = v;
    }
}

/// What `train` was asked to do, resolved: the config (its data included), the line naming
/// the recipe, the run folder and the checkpoint to continue from.
pub struct TrainSetup {
    pub cfg: TrainConfig,
    /// The run's first lines: the recipe, and on a resume each flag it applies.
    pub recipe: String,
    pub out: PathBuf,
    pub resume: Option<PathBuf>,
    /// Set when the resumed run has already done all its iterations: the message to print.
    pub finished: Option<String>,
}

/// The image flags over a config; the resolution is resolved to a number (recorded with the
/// run) and the cache folder made absolute.
pub fn apply_images(cfg: &mut TrainConfig, images: &ImageArgs) {
    if let Some(m) = images.max_side {
        cfg.max_side = m;
    }
    cfg.max_side = cfg.image_side();
    if let Some(d) = &images.cache_dir {
        cfg.cache_dir = Some(path_string(d));
    }
}

/// The model and training flags laid over `cfg` (a new run's recipe, or a resumed run's
/// config to compare with); `heard` is told each config key a flag set, and the flag.
pub(super) fn lay_flags(cfg: &mut TrainConfig, a: &TrainArgs, mut heard: impl FnMut(&str, &str)) -> Result<()> {
    macro_rules! set {
        ($($src:expr => $field:ident),*) => { $( if let Some(v) = &$src {
            cfg.$field = v.clone();
            heard(stringify!($field), &format!("--{}", stringify!($field).replace('_', "-")));
        } )* };
    }
    let m = &a.model;
    set!(m.arch => arch, m.width => width, m.stem => stem, a.epochs => epochs, a.batch_size => batch_size,
        a.prototypes => prototypes, a.feat_dim => feat_dim, a.hidden_mlp => hidden_mlp,
        a.queue_length => queue_length, a.epoch_queue_starts => epoch_queue_starts, a.lr => lr,
        a.optimizer => optimizer, a.loss_scale => loss_scale, a.epsilon => epsilon, a.temperature => temperature,
        a.freeze_prototypes_niters => freeze_prototypes_niters, a.seed => seed, a.precision => precision);
    if a.sync_bn {
        cfg.sync_bn = true;
        heard("sync_bn", "--sync-bn");
    }
    if let Some(c) = &a.crops {
        cfg.crops = parse_crops(c)?;
        let n = cfg.n_crops();
        cfg.crops_for_assign.retain(|&c| c < n);
        heard("crops", "--crops");
        heard("crops_for_assign", "--crops");
    }
    Ok(())
}

pub fn train_setup(a: &TrainArgs) -> Result<TrainSetup> {
    match &a.resume {
        Some(r) => resume_setup(a, r),
        None => new_run_setup(a),
    }
}

/// A resumed run keeps its checkpoint's configuration and data, and its folder.
pub fn resume_setup(a: &TrainArgs, r: &Path) -> Result<TrainSetup> {
    let file = super::resolve_resume(r)?;
    let meta = Trainer::checkpoint_meta(&file)?;
    let run_dir = super::run_folder(&file);
    if let Some(out) = a.out.as_ref().filter(|out| !super::same_path(out, &run_dir)) {
        return Err(Error::Invalid(format!(
            "--resume '{}' continues the run in '{}'; --out '{}' names another folder (leave --out out, or copy the run there first)",
            r.display(),
            run_dir.display(),
            out.display()
        )));
    }
    let (mut cfg, mut notes) = resume::apply_flags(a, &meta.config, &file)?;
    if cfg.epochs == 0 {
        return Err(Error::Invalid("--epochs must be at least 1".into()));
    }
    cfg.validate()?;
    let total = cfg.epochs.saturating_mul(meta.iters_per_epoch.max(1));
    let finished = (meta.iteration >= total).then(|| {
        format!(
            "run {} is finished: {} of {total} iterations; pass --epochs M (> {}) to train it longer",
            run_dir.display(),
            meta.iteration,
            meta.iteration / meta.iters_per_epoch.max(1)
        )
    });
    notes.extend(resume::apply_data(a, &mut cfg, finished.is_some(), r)?);
    notes.extend(resume::run_options(a, meta.iteration, finished.is_some())?);
    let mut recipe = format!("recipe: resumed from {} (its stored config)", file.display());
    for n in notes {
        recipe += &format!("\n{n}");
    }
    Ok(TrainSetup { cfg, recipe, out: run_dir, resume: Some(file), finished })
}

/// A new run: the defaults for its data, the --config file over them, the flags over both.
pub fn new_run_setup(a: &TrainArgs) -> Result<TrainSetup> {
    let config_text = match &a.config {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|e| Error::Invalid(format!("--config '{}': {e}", path.display())))?,
        ),
        None => None,
    };
    let bad_config = |e: Error| match &a.config {
        Some(path) => Error::Invalid(format!("--config '{}': {e}", path.display())),
        None => e,
    };
    // A config file may name the data itself (a run's config.toml does); --data wins.
    let file_has_data = match &config_text {
        Some(text) => text
            .parse::<toml::Table>()
            .map_err(|e| bad_config(Error::Invalid(format!("invalid config: {e}"))))?
            .contains_key("data"),
        None => false,
    };
    let has_data = a.data.is_some() || file_has_data;
    let mut recipe = format!("recipe: {}", recipe_name(has_data));
    let mut cfg = match (&config_text, &a.config) {
        (Some(text), Some(path)) => {
            recipe += &format!(" with --config {}", path.display());
            default_config(has_data).with_toml(text).map_err(bad_config)?
        }
        _ => default_config(has_data),
    };
    lay_flags(&mut cfg, a, |_, _| {})?;
    if cfg.epochs == 0 {
        return Err(Error::Invalid("--epochs must be at least 1".into()));
    }
    cfg.validate()?;
    // The flag, else the config file's key; recorded absolute, so that --resume from any
    // folder finds them.
    let absolute = |flag: &Option<PathBuf>, file: &Option<String>| {
        flag.as_deref().map(path_string).or_else(|| file.as_deref().map(|f| path_string(Path::new(f))))
    };
    cfg.data = absolute(&a.data, &cfg.data);
    cfg.test_data = absolute(&a.test_data, &cfg.test_data);
    apply_images(&mut cfg, &a.images);
    cfg.validate()?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs/swav"));
    Ok(TrainSetup { cfg, recipe, out, resume: None, finished: None })
}
