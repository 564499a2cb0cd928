//! The `swav-wgpu` command line: parses the flags and dispatches to train (set up in
//! `run::setup`), eval (knn, linear), embed, prepare, bench, check-parallel and devices.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use swav_wgpu::gpu::{describe_adapter, list_adapters, pick_adapter, Gpu, GpuOptions};
use swav_wgpu::optim::OptimizerKind;
use swav_wgpu::run::setup::{
    apply_images, apply_model, default_config, parse_crops, train_setup, ImageArgs, ModelArgs, TrainArgs,
};
use swav_wgpu::run::{self, RunOptions};
use swav_wgpu::train::config::natural_image_defaults;
use swav_wgpu::train::{TrainConfig, Trainer};
use swav_wgpu::{Error, Result};

#[derive(Parser)]
#[command(name = "swav-wgpu", version, about = "SwAV self-supervised learning on any GPU through WebGPU")]
struct Cli {
    /// Backend(s): vulkan, metal, dx12 (comma-separated). Also SWAV_WGPU_BACKEND or WGPU_BACKEND.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use the adapter whose name contains this text (case-insensitive). Also SWAV_WGPU_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Request the adapter's full limits instead of WebGPU's defaults (native only).
    #[arg(long, global = true)]
    full_limits: bool,
    /// Never use the subgroup fast paths (software adapters). Also SWAV_WGPU_NO_SUBGROUPS=1.
    #[arg(long, global = true)]
    no_subgroups: bool,
    /// Time kernels by wall clock even where the adapter has GPU timestamps. Also
    /// SWAV_WGPU_NO_TIMESTAMPS=1.
    #[arg(long, global = true)]
    no_timestamps: bool,
    /// GEMM kernel tuning when a plan is compiled: off (the built-in choice), quick (real GPUs
    /// time the workgroup tiles per op and shape), full (also the subgroup tiles on GPUs, every
    /// variant on software adapters). Choices are cached in
    /// ~/.cache/swav-wgpu/tune.json (SWAV_WGPU_TUNE_CACHE). Also SWAV_WGPU_TUNE. [default: quick]
    #[arg(long, global = true)]
    tune: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train SwAV (on the built-in dataset when --data is omitted; a resumed run on its own data).
    Train(Box<TrainArgs>),
    /// Evaluate a backbone's features.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Write backbone features of a dataset to a safetensors file.
    Embed(EmbedArgs),
    /// Decode a photo folder once into its dataset cache, as `train` with the same data flags
    /// would (ahead of a job, on a login node); a cache that is up to date is left as it is.
    Prepare(PrepareArgs),
    /// List the adapters wgpu can see and mark the one that would be used.
    Devices,
    /// Time kernels, training steps and the data loader on this adapter.
    Bench(BenchArgs),
    /// Print the device memory a training run with these flags needs, by kind, and its peak:
    /// the plan is compiled for this adapter without allocating it, and nothing trains.
    Plan(Box<TrainArgs>),
    /// Under mpirun/srun: check that this data-parallel job computes what one process does
    /// on the whole global batch (codes, loss, gradients, parameters over a few steps).
    CheckParallel(CheckParallelArgs),
}

#[derive(Args)]
struct CheckParallelArgs {
    /// Images per rank (one process checks world x this).
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    #[arg(long, default_value_t = 3, value_parser = count_up_to(1000))]
    steps: usize,
    /// Synchronised batch-norm (then everything is compared; without it, the codes).
    #[arg(long)]
    sync_bn: bool,
    #[command(flatten)]
    model: ModelArgs,
    /// Crops per image as COUNTxSIZE groups, large first.
    #[arg(long)]
    crops: Option<String>,
    #[arg(long, default_value = "lars")]
    optimizer: OptimizerKind,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest relative error accepted.
    #[arg(long, default_value_t = 1e-5)]
    tolerance: f64,
}

#[derive(Args)]
struct BenchArgs {
    /// Small problems and only the first step configuration (software adapters, CI).
    #[arg(long)]
    quick: bool,
    /// Timed repetitions per measurement (the median is printed).
    #[arg(long, default_value_t = 5, value_parser = count_up_to(1000))]
    reps: usize,
    /// Time training steps of this config file instead of the built-in three (repeatable;
    /// keys over `TrainConfig::default()`, as the PyTorch twin reads them).
    #[arg(long)]
    config: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Weighted k-NN (k 20 and 200, temperature 0.1) on L2-normalised backbone features.
    Knn(EvalArgs),
    /// A linear classifier on frozen features (SGD, cosine schedule).
    Linear(EvalArgs),
}

#[derive(Args)]
struct EvalArgs {
    /// A training checkpoint (or run folder) whose backbone to evaluate.
    #[arg(long, conflicts_with = "random_init")]
    checkpoint: Option<PathBuf>,
    /// Evaluate an untrained network (the baseline): the network `train` would start from
    /// with the same --data and --seed.
    #[arg(long)]
    random_init: bool,
    /// Labelled training data (default: the checkpoint's training data, else the built-in
    /// dataset's train split).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Labelled test data (default: the checkpoint's test data, else the data's own test split).
    #[arg(long)]
    test_data: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0.1)]
    temperature: f32,
    /// Epochs of the linear probe.
    #[arg(long, default_value_t = 30, value_parser = count_up_to(10_000))]
    epochs: usize,
    #[command(flatten)]
    images: ImageArgs,
}

#[derive(Args)]
struct EmbedArgs {
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    #[arg(long)]
    random_init: bool,
    /// Images to embed (default: the checkpoint's training data, else the built-in dataset).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output safetensors file: "features" [N, F] (L2-normalised) and "labels" when known.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    images: ImageArgs,
}

#[derive(Args)]
struct PrepareArgs {
    /// The photo folder (ImageFolder tree, train/ + test/ trees, or a flat folder).
    #[arg(long)]
    data: PathBuf,
    /// Labelled held-out data, cached too when it is a folder.
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// The config the run will use (its crops set the resolution).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Crops per image as COUNTxSIZE groups, large first (they set the resolution).
    #[arg(long)]
    crops: Option<String>,
    #[command(flatten)]
    images: ImageArgs,
}

/// A count flag's parser: a whole number from 1 to `max` (clap names the flag when it is not).
fn count_up_to(max: usize) -> impl Fn(&str) -> std::result::Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {max}")),
    }
}

fn options(cli: &Cli) -> Result<GpuOptions> {
    let env = GpuOptions::from_env();
    let tune = match &cli.tune {
        Some(t) => t.parse()?,
        None => match std::env::var("SWAV_WGPU_TUNE") {
            Ok(t) if !t.is_empty() => t.parse().map_err(|e| Error::Invalid(format!("SWAV_WGPU_TUNE: {e}")))?,
            _ => env.tune,
        },
    };
    Ok(GpuOptions {
        tune,
        tune_cache: env.tune_cache,
        backend: cli.backend.clone().or(env.backend),
        adapter: cli.adapter.clone().or(env.adapter),
        full_limits: cli.full_limits || env.full_limits,
        no_subgroups: cli.no_subgroups || env.no_subgroups,
        no_f16: env.no_f16,
        no_timestamps: cli.no_timestamps || env.no_timestamps,
        local_rank: None,
    })
}

fn open_gpu(opts: &GpuOptions) -> Result<Arc<Gpu>> {
    let gpu = pollster::block_on(Gpu::new(opts))?;
    eprintln!("adapter: {}", gpu.describe());
    Ok(gpu)
}

fn devices(opts: &GpuOptions) -> Result<()> {
    let adapters = pollster::block_on(list_adapters(opts))?;
    if adapters.is_empty() {
        return Err(Error::NoAdapter(String::new()));
    }
    let chosen = pollster::block_on(pick_adapter(opts)).ok().map(|a| a.get_info());
    for a in &adapters {
        let info = a.get_info();
        let mark = if chosen.as_ref() == Some(&info) { "*" } else { " " };
        let l = a.limits();
        println!("{mark} {}", describe_adapter(&info));
        println!(
            "    max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB, workgroup storage {} KiB, invocations/workgroup {}, storage buffers/stage {}",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            l.max_storage_buffers_per_shader_stage
        );
        if a.features().contains(wgpu::Features::SUBGROUP) {
            println!("    subgroups of {}-{} lanes", info.subgroup_min_size, info.subgroup_max_size);
        }
    }
    match chosen {
        Some(_) => println!(
            "(* = the adapter swav-wgpu would use; it requests {} limits)",
            if opts.full_limits { "the adapter's full" } else { "WebGPU's default" }
        ),
        None => println!("(none of these matches the selection)"),
    }
    Ok(())
}

/// The backbone config and weights to evaluate (from a checkpoint, or random) and the data
/// to evaluate on (the flags, else the checkpoint's run's data).
struct BackboneSource {
    cfg: TrainConfig,
    weights: Option<PathBuf>,
    data: Option<PathBuf>,
    test_data: Option<PathBuf>,
}

fn backbone_source(
    checkpoint: &Option<PathBuf>,
    random_init: bool,
    m: &ModelArgs,
    data: &Option<PathBuf>,
    test_data: &Option<PathBuf>,
) -> Result<BackboneSource> {
    match (checkpoint, random_init) {
        (Some(p), _) => {
            let file = run::resolve_resume(p)
                .map_err(|_| Error::Invalid(format!("--checkpoint '{}': no checkpoint found", p.display())))?;
            // A training checkpoint, or an exported backbone (train's backbone.safetensors, the
            // browser demo's download), whose metadata holds the config.
            let cfg = match Trainer::checkpoint_meta(&file) {
                Ok(meta) => meta.config,
                Err(e) => match swav_wgpu::io::read_metadata(&file)?.get(swav_wgpu::train::backbone::CONFIG_KEY) {
                    Some(text) => TrainConfig::from_toml(text)
                        .map_err(|e| Error::Invalid(format!("--checkpoint '{}': its config: {e}", p.display())))?,
                    None => return Err(e),
                },
            };
            // Without --data, the run's own data (and its test data unless --test-data).
            let (data, test_data) = match data {
                Some(d) => (Some(d.clone()), test_data.clone()),
                None => (
                    cfg.data.as_ref().map(PathBuf::from),
                    test_data.clone().or_else(|| cfg.test_data.as_ref().map(PathBuf::from)),
                ),
            };
            Ok(BackboneSource { cfg, weights: Some(file), data, test_data })
        }
        (None, true) => {
            // The network `train` starts from on this data (same defaults, same --seed).
            let mut cfg = default_config(data.is_some());
            apply_model(&mut cfg, m);
            cfg.validate()?;
            Ok(BackboneSource { cfg, weights: None, data: data.clone(), test_data: test_data.clone() })
        }
        (None, false) => {
            Err(Error::Invalid("no backbone to evaluate or embed: give --checkpoint PATH or --random-init".into()))
        }
    }
}

/// How eval and embed open photo folders: the flags, else the checkpoint's run's (or, for
/// --random-init, the defaults') resolution and cache folder.
fn image_options(cfg: &TrainConfig, images: &ImageArgs) -> Result<swav_wgpu::data::OpenOptions> {
    let mut cfg = cfg.clone();
    apply_images(&mut cfg, images);
    cfg.validate()?;
    Ok(run::data_options(&cfg, false))
}

/// `swav-wgpu prepare`: the dataset caches `train` with the same flags would open.
fn prepare(a: &PrepareArgs) -> Result<()> {
    let mut cfg = natural_image_defaults();
    if let Some(path) = &a.config {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Invalid(format!("--config '{}': {e}", path.display())))?;
        cfg = cfg.with_toml(&text).map_err(|e| Error::Invalid(format!("--config '{}': {e}", path.display())))?;
    }
    if let Some(c) = &a.crops {
        cfg.crops = parse_crops(c)?;
    }
    apply_images(&mut cfg, &a.images);
    cfg.validate()?;
    let split = run::open_data(Some(&a.data), a.test_data.as_deref(), &run::data_options(&cfg, false))?;
    let sets = std::iter::once(&split.train).chain(split.test.as_ref());
    let mut any = false;
    for ds in sets {
        if let (Some(desc), Some(c)) = (run::describe_cache(ds), ds.cache()) {
            let state = if c.was_built() { "built" } else { "up to date, nothing to do" };
            println!("{}: {} images at {desc}: {state}", ds.source, ds.len());
            any = true;
        }
    }
    if !any {
        println!("'{}' is not a photo folder (CIFAR batches are read as they are): nothing to cache", a.data.display());
    }
    Ok(())
}

fn extractor(
    gpu: Arc<Gpu>,
    cfg: &TrainConfig,
    weights: &Option<PathBuf>,
    seed: u64,
    size: usize,
) -> Result<swav_wgpu::eval::FeatureExtractor> {
    let fx = swav_wgpu::eval::FeatureExtractor::new(gpu, &cfg.backbone()?, 256, size)?;
    match weights {
        Some(f) => fx.load(&swav_wgpu::io::load_safetensors(f)?)?,
        None => fx.init_random(seed)?,
    }
    Ok(fx)
}

fn eval(opts: &GpuOptions, cmd: &EvalCommand) -> Result<()> {
    let (a, linear) = match cmd {
        EvalCommand::Knn(a) => (a, false),
        EvalCommand::Linear(a) => (a, true),
    };
    let BackboneSource { cfg, weights, data, test_data } =
        backbone_source(&a.checkpoint, a.random_init, &a.model, &a.data, &a.test_data)?;
    let split = run::open_data(data.as_deref(), test_data.as_deref(), &image_options(&cfg, &a.images)?)?;
    let test =
        split.test.as_ref().ok_or_else(|| Error::Invalid("no test split: give --test-data (labelled)".into()))?;
    if !(split.train.is_labelled() && test.is_labelled()) {
        return Err(Error::Invalid(format!(
            "evaluation needs labels: '{}' or '{}' has none",
            split.train.source, test.source
        )));
    }
    eprintln!("evaluating on {} (test: {})", split.train.source, test.source);
    let gpu = open_gpu(opts)?;
    let fx = extractor(gpu.clone(), &cfg, &weights, a.seed, run::eval_size(&split.train, &cfg))?;
    let what = if weights.is_some() { "checkpoint" } else { "random init" };
    if linear {
        let (tl, vl) = (split.train.labels.as_ref().expect("checked"), test.labels.as_ref().expect("checked"));
        let ftrain = fx.extract(&split.train)?;
        let ftest = fx.extract(test)?;
        let classes = split.train.classes.len().max(1 + *tl.iter().chain(vl).max().unwrap_or(&0) as usize);
        let top1 = swav_wgpu::eval::linear_probe(gpu, &ftrain, tl, &ftest, vl, fx.dim, classes, a.epochs, a.seed)?;
        let (n, m) = (split.train.len(), test.len());
        println!("linear probe top-1 ({what}): {top1:.2} % ({classes} classes, {n} train / {m} test images)");
    } else {
        let (k20, k200) = run::knn_eval(&fx, &split.train, test, a.temperature)?;
        println!("k-NN top-1 ({what}): {k20:.2} % (k=20), {k200:.2} % (k=200)");
    }
    Ok(())
}

fn embed(opts: &GpuOptions, a: &EmbedArgs) -> Result<()> {
    let BackboneSource { cfg, weights, data, .. } =
        backbone_source(&a.checkpoint, a.random_init, &a.model, &a.data, &None)?;
    let split = run::open_data(data.as_deref(), None, &image_options(&cfg, &a.images)?)?;
    let gpu = open_gpu(opts)?;
    let fx = extractor(gpu, &cfg, &weights, a.seed, run::eval_size(&split.train, &cfg))?;
    let feats = fx.extract(&split.train)?;
    let mut out = std::collections::BTreeMap::new();
    out.insert(
        "features".to_string(),
        swav_wgpu::io::OutTensor::F32 { shape: vec![split.train.len(), fx.dim], data: feats },
    );
    if let Some(l) = &split.train.labels {
        out.insert(
            "labels".to_string(),
            swav_wgpu::io::OutTensor::I64 { shape: vec![l.len()], data: l.iter().map(|&v| v as i64).collect() },
        );
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("source".into(), split.train.source.clone());
    swav_wgpu::io::save_safetensors_atomic(&a.out, &out, meta)?;
    println!("wrote {} features of dimension {} to {}", split.train.len(), fx.dim, a.out.display());
    Ok(())
}

fn bench(opts: &GpuOptions, a: &BenchArgs) -> Result<()> {
    let mut configs = Vec::new();
    for path in &a.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read --config '{}': {e}", path.display())))?;
        let cfg = TrainConfig::from_toml(&text)
            .and_then(|c| c.validate().map(|()| c))
            .map_err(|e| Error::Invalid(format!("--config '{}': {e}", path.display())))?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        configs.push((name, cfg));
    }
    // bench prints the adapter itself, on stdout with its results.
    let gpu = pollster::block_on(Gpu::new(opts))?;
    swav_wgpu::bench::run(gpu, &swav_wgpu::bench::BenchOptions { reps: a.reps, quick: a.quick, configs })
}

/// `swav-wgpu train`, in one process or as one rank of an MPI job.
fn train(opts: &GpuOptions, a: &TrainArgs) -> Result<()> {
    let world = swav_wgpu::dist::world()?;
    let rank = world.rank();
    let result = (|| {
        let setup = train_setup(a)?;
        if rank == 0 {
            eprintln!("{}", setup.recipe);
        }
        if let Some(finished) = &setup.finished {
            // Nothing to do: leave every file of the run as it is.
            if rank == 0 {
                eprintln!("{finished}");
            }
            return Ok(());
        }
        let mut opts = opts.clone();
        if world.world() > 1 && opts.adapter.is_none() {
            opts.local_rank = Some(world.local_rank());
        }
        let gpu = pollster::block_on(Gpu::new(&opts))?;
        if world.world() == 1 {
            eprintln!("adapter: {}", gpu.describe());
        }
        let ro = RunOptions {
            out: setup.out,
            resume: setup.resume,
            checkpoint_every: a.checkpoint_every,
            eval_every: a.eval_every,
            #[cfg(feature = "test-hooks")]
            faults: a.faults,
            stop_at: a.stop_at,
            collective: world.clone(),
        };
        let summary = run::train(gpu, setup.cfg, ro)?;
        if summary.interrupted {
            std::process::exit(130);
        }
        Ok(())
    })();
    if let (Err(e), true) = (&result, world.world() > 1) {
        // The other ranks would wait for this one: stop the job.
        eprintln!("error: rank {rank}: {e}");
        world.abort(1);
    }
    result
}

/// `swav-wgpu check-parallel` (under mpirun/srun): the job against one process.
fn check_parallel(opts: &GpuOptions, a: &CheckParallelArgs) -> Result<()> {
    let world = swav_wgpu::dist::world()?;
    let result = (|| {
        let mut cfg = swav_wgpu::train::config::small_data_defaults();
        apply_model(&mut cfg, &a.model);
        cfg.batch_size = a.batch_size;
        cfg.sync_bn = a.sync_bn;
        cfg.seed = a.seed;
        cfg.optimizer = a.optimizer;
        if let Some(c) = &a.crops {
            cfg.crops = parse_crops(c)?;
        }
        cfg.validate()?;
        let mut opts = opts.clone();
        if world.world() > 1 && opts.adapter.is_none() {
            opts.local_rank = Some(world.local_rank());
        }
        let gpu = pollster::block_on(Gpu::new(&opts))?;
        if world.rank() == 0 {
            eprintln!("checking {} on {}", world.describe(), gpu.describe());
        }
        let report = swav_wgpu::train::parallel::check_parallel(gpu, &cfg, a.steps, world.clone())?;
        if let Some(r) = report {
            println!("{r}");
            if !r.passes(a.tolerance) {
                return Err(Error::Invalid(format!(
                    "the job differs from one process by more than --tolerance {:.0e} (and than one process differs from itself reordered)",
                    a.tolerance
                )));
            }
            println!(
                "ok: within {:.0e}, or of one process against itself where float32 does not get that close",
                a.tolerance
            );
        }
        Ok(())
    })();
    if let (Err(e), true) = (&result, world.world() > 1) {
        eprintln!("error: rank {}: {e}", world.rank());
        world.abort(1);
    }
    result
}

/// `swav-wgpu plan`: the training plan's device memory, measured without allocating it.
fn plan(opts: &GpuOptions, a: &TrainArgs) -> Result<()> {
    let setup = train_setup(a)?;
    let mut cfg = setup.cfg.clone();
    eprintln!("{}", setup.recipe);
    let gpu = pollster::block_on(Gpu::new(opts))?;
    if let Some(line) = swav_wgpu::train::precision::resolve(&mut cfg, &gpu)? {
        eprintln!("{line}");
    }
    let cfg = &cfg;
    let tg = swav_wgpu::train::build_graph_for(cfg, 1)?;
    let report = swav_wgpu::graph::plan::Plan::measure(&tg.graph, &gpu)?;
    let crops: Vec<String> = cfg.crops.iter().map(|c| format!("{}x{}", c.count, c.size)).collect();
    println!(
        "{} x{} ({} stem), batch {}, crops {}, {} prototypes, {} activations, on {}",
        cfg.arch,
        cfg.width,
        cfg.stem,
        cfg.batch_size,
        crops.join("+"),
        cfg.prototypes,
        cfg.precision,
        gpu.describe()
    );
    println!("plan: {report}");
    println!("{}", report.memory);
    Ok(())
}

/// The test hook's argument checks: what a command checks before it opens the GPU (eval and
/// embed up to opening their data; devices, bench, prepare and check-parallel: clap's alone).
#[cfg(feature = "test-hooks")]
fn check_args(command: &Command) -> Result<()> {
    let source = |checkpoint: &Option<PathBuf>, random_init, model, data, test_data, images| {
        let src = backbone_source(checkpoint, random_init, model, data, test_data)?;
        image_options(&src.cfg, images).map(|_| ())
    };
    match command {
        Command::Train(a) | Command::Plan(a) => train_setup(a).map(|_| ()),
        Command::Eval(EvalCommand::Knn(a) | EvalCommand::Linear(a)) => {
            source(&a.checkpoint, a.random_init, &a.model, &a.data, &a.test_data, &a.images)
        }
        Command::Embed(a) => source(&a.checkpoint, a.random_init, &a.model, &a.data, &None, &a.images),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = match options(&cli) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Test hook (tests/cli.rs fuzzes the flags; test builds only): parse and check the
    // arguments as a run would, up to opening the GPU, then stop.
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("SWAV_WGPU_CHECK_ARGS").is_some() {
        return match check_args(&cli.command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = match &cli.command {
        Command::Devices => devices(&opts),
        Command::Train(a) => train(&opts, a),
        Command::CheckParallel(a) => check_parallel(&opts, a),
        Command::Eval(c) => eval(&opts, c),
        Command::Bench(a) => bench(&opts, a),
        Command::Plan(a) => plan(&opts, a),
        Command::Embed(a) => embed(&opts, a),
        Command::Prepare(a) => prepare(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
