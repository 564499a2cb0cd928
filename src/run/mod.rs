//! `swav-wgpu train`: the training run around the compiled step: data and augmentation
//! workers, progress bar, metrics.jsonl and a loss plot, periodic atomic checkpoints, Ctrl-C,
//! NaN diagnosis, the collapse warning, a per-epoch learning monitor (Sinkhorn code entropy,
//! prototypes in use, k-NN), and the final k-NN evaluation.
mod diagnose;
mod monitor;
mod plot;
pub mod setup;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::data::loader::{Batch, Prefetcher};
use crate::data::{self, DataSplit, Dataset};
use crate::dist::Collective;
use crate::error::{Error, Result};
use crate::eval::{knn_top1, FeatureExtractor};
use crate::gpu::Gpu;
use crate::train::checkpoint::is_backbone_key;
use crate::train::{TrainConfig, Trainer};
use diagnose::diagnose_nan;
pub(crate) use monitor::format_duration;
pub use monitor::EpochPoint;
use monitor::{EpochMonitor, Metrics};
pub use plot::plot_svg;

/// How to run; the data is the config's (`TrainConfig::data`, `test_data`), so that a
/// resumed run trains on what it started on.
pub struct RunOptions {
    pub out: PathBuf,
    /// The checkpoint to continue from (a file, or a run folder holding one).
    pub resume: Option<PathBuf>,
    /// Checkpoint every this many iterations (0 = at the end of every epoch).
    pub checkpoint_every: usize,
    /// Run the k-NN evaluation every this many epochs (0 = only at the end).
    pub eval_every: usize,
    /// Faults the test suite injects (test builds only).
    #[cfg(feature = "test-hooks")]
    pub faults: Faults,
    /// Checkpoint and stop once this many iterations are done (a job with a time limit
    /// continues with --resume); None: train to the end.
    pub stop_at: Option<usize>,
    /// The ranks of a data-parallel job (`dist::world()`; `Solo` for one process). Rank r
    /// trains on slice r of every global batch; rank 0 alone writes the run's files.
    pub collective: Arc<dyn Collective>,
}

/// Faults the test suite injects into a run, each before the given iteration: the hidden
/// `train --inject-*` flags of test builds (feature `test-hooks`; `cargo build` has none).
#[cfg(feature = "test-hooks")]
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Testing aid: put a NaN into the prototypes before this iteration (the divergence path).
    #[arg(long, hide = true)]
    pub inject_nan_at: Option<usize>,
    /// Testing aid: destroy the GPU device before this iteration (the device-loss path).
    #[arg(long, hide = true)]
    pub inject_device_loss_at: Option<usize>,
    /// Testing aid: issue a command the GPU rejects, outside any error scope, before this
    /// iteration (the uncaptured-error path).
    #[arg(long, hide = true)]
    pub inject_gpu_error_at: Option<usize>,
    /// Testing aid: seed this iteration's backward pass with +inf (needs --loss-scale), so its
    /// gradients overflow and the step is skipped (the loss-scaling path).
    #[arg(long, hide = true)]
    pub inject_overflow_at: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub iterations: usize,
    pub final_loss: f32,
    pub knn_top1: Option<f64>,
    pub seconds: f64,
    pub interrupted: bool,
}

pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Where `--resume` points: a checkpoint file, or a run folder holding one.
pub fn resolve_resume(p: &Path) -> Result<PathBuf> {
    let file = if p.is_dir() { p.join(CHECKPOINT) } else { p.to_path_buf() };
    if !file.is_file() {
        return Err(Error::Invalid(format!(
            "--resume '{}': no checkpoint found (expected a file or a run folder with {CHECKPOINT})",
            p.display()
        )));
    }
    Ok(file)
}

/// The run folder of a checkpoint file: the folder it lies in.
pub fn run_folder(checkpoint: &Path) -> PathBuf {
    match checkpoint.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `p` as an absolute path, symbolic links resolved where it exists, so that paths recorded
/// in a run compare equal however they were spelled and still work from another folder.
pub fn absolute_path(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf())
}

/// Whether two paths name the same file or folder.
pub fn same_path(a: &Path, b: &Path) -> bool {
    absolute_path(a) == absolute_path(b)
}

/// Opens the data, with `--test-data` (when given) as the held-out split, its labels
/// numbered as the training classes of the same name (`data::test_labels_by_name`).
pub fn open_data(data: Option<&Path>, test: Option<&Path>, opts: &data::OpenOptions) -> Result<DataSplit> {
    let split = data::open(data, opts)?;
    match test {
        Some(t) => DataSplit::new(split.train, Some(data::open(Some(t), opts)?.train)),
        None => Ok(split),
    }
}

/// How a run's config opens its data: at its resolution, with its cache folder.
pub fn data_options(cfg: &TrainConfig, quiet: bool) -> data::OpenOptions {
    data::OpenOptions { max_side: cfg.image_side(), cache_dir: cfg.cache_dir.as_ref().map(PathBuf::from), quiet }
}

/// "64 px from cache /x/y.swavdata (12.3 MB)" for a run's first lines; None for data held
/// in memory.
pub fn describe_cache(ds: &Dataset) -> Option<String> {
    let c = ds.cache()?;
    let size = std::fs::metadata(c.path()).map(|m| m.len()).unwrap_or(0);
    let side = match c.header().short_side {
        0 => "full size".to_string(),
        n => format!("{n} px (shorter side)"),
    };
    Some(format!("{side}, dataset cache {} ({:.1} MB)", c.path().display(), size as f64 / 1e6))
}

/// Backbone features of both splits and the weighted k-NN top-1 (%) at k = 20 and 200.
pub fn knn_eval(extractor: &FeatureExtractor, train: &Dataset, test: &Dataset, temperature: f32) -> Result<(f64, f64)> {
    let (Some(tl), Some(vl)) = (&train.labels, &test.labels) else {
        return Err(Error::Invalid("k-NN evaluation needs labelled train and test data".into()));
    };
    let classes = train.classes.len().max(1 + *tl.iter().chain(vl.iter()).max().unwrap_or(&0) as usize);
    let ftrain = extractor.extract(train)?;
    let ftest = extractor.extract(test)?;
    let d = extractor.dim;
    Ok((
        knn_top1(&ftrain, tl, &ftest, vl, d, 20, temperature, classes),
        knn_top1(&ftrain, tl, &ftest, vl, d, 200, temperature, classes),
    ))
}

/// The size evaluation views are resized to: the data's own size when all images share it,
/// else the largest crop.
pub fn eval_size(ds: &Dataset, cfg: &TrainConfig) -> usize {
    match ds.uniform_size() {
        Some((w, h)) if w == h => w,
        _ => cfg.crops.iter().map(|c| c.size).max().unwrap_or(32),
    }
}

fn write_config(out: &Path, cfg: &TrainConfig) -> Result<()> {
    std::fs::write(out.join("config.toml"), cfg.to_toml())
        .map_err(|e| Error::Invalid(format!("cannot write '{}': {e}", out.join("config.toml").display())))
}

/// The training run. Errors name the file or flag at fault.
pub fn train(gpu: Arc<Gpu>, mut cfg: TrainConfig, opts: RunOptions) -> Result<RunSummary> {
    // Before the config is written: the run records the precision it trains in.
    if let Some(line) = crate::train::precision::resolve(&mut cfg, &gpu)? {
        if opts.collective.rank() == 0 {
            eprintln!("{line}");
        }
    }
    let mut run = Run::start(gpu, cfg, opts)?;
    while run.trainer.iteration < run.total {
        let Some(batch) = run.prefetch.next() else {
            return Err(Error::Invalid("the data workers stopped unexpectedly".into()));
        };
        run.step(&batch?)?;
        if run.trainer.iteration.is_multiple_of(run.iters_per_epoch) {
            run.end_epoch()?;
        }
        if run.interrupted.load(Ordering::SeqCst) {
            return run.interrupt();
        }
        if run.opts.stop_at.is_some_and(|n| run.trainer.iteration >= n) && run.trainer.iteration < run.total {
            return run.stop();
        }
    }
    run.finish()
}

/// The run's data (its resolution and cache said on rank 0), checked to hold a global batch.
fn open_training_data(cfg: &TrainConfig, rank: usize, world: usize) -> Result<DataSplit> {
    let data = cfg.data.as_deref().map(Path::new);
    let split = open_data(data, cfg.test_data.as_deref().map(Path::new), &data_options(cfg, rank != 0))?;
    let train = &split.train;
    if let (Some(c), Some(desc), 0) = (train.cache(), describe_cache(train), rank) {
        eprintln!("images: {desc}");
        let largest = cfg.crops.iter().map(|c| c.size).max().unwrap_or(0);
        let side = c.header().short_side;
        if side > 0 && side < largest {
            eprintln!("warning: --max-side {side} is smaller than the largest crop ({largest} px): crops are upsampled from smaller images");
        }
    }
    if train.len() < cfg.batch_size * world {
        return Err(Error::Invalid(format!(
            "--batch-size {} x {world} rank(s) is larger than the dataset ({} images in {})",
            cfg.batch_size,
            train.len(),
            train.source
        )));
    }
    Ok(split)
}

/// A run in progress: the trainer, its data, and what it reports and records.
struct Run {
    gpu: Arc<Gpu>,
    cfg: TrainConfig,
    opts: RunOptions,
    train_set: Arc<Dataset>,
    test_set: Option<Dataset>,
    trainer: Trainer,
    iters_per_epoch: usize,
    total: usize,
    prefetch: Prefetcher,
    ckpt: PathBuf,
    metrics: Metrics,
    monitor: EpochMonitor,
    bar: indicatif::ProgressBar,
    /// indicatif hides its bar (and its println) when stderr is not a terminal: there, a
    /// log gets one plain line per epoch instead.
    terminal: bool,
    interrupted: Arc<AtomicBool>,
    start: Instant,
    last_loss: f32,
    /// The collapse warning: whether every loss of the epoch so far sat at ln K.
    epoch_near_ln_k: bool,
    /// img/s over windows of ~2 s.
    window: Instant,
    window_imgs: usize,
    rate: f64,
}

impl Run {
    /// Opens the data, writes the config, builds (or resumes) the trainer and starts the
    /// data workers.
    fn start(gpu: Arc<Gpu>, cfg: TrainConfig, opts: RunOptions) -> Result<Run> {
        let resume_file = opts.resume.as_deref().map(resolve_resume).transpose()?;
        cfg.validate()?;
        let (rank, world) = (opts.collective.rank(), opts.collective.world());
        let split = open_training_data(&cfg, rank, world)?;
        let train_set = Arc::new(split.train);
        let global_batch = cfg.batch_size * world;
        let iters_per_epoch = train_set.len() / global_batch;
        if rank == 0 {
            std::fs::create_dir_all(&opts.out)
                .map_err(|e| Error::Invalid(format!("cannot create --out '{}': {e}", opts.out.display())))?;
            let removed = crate::io::remove_dead_temporaries(&opts.out);
            if !removed.is_empty() {
                eprintln!("removed {} temporary file(s) of a killed run: {}", removed.len(), removed.join(", "));
            }
            write_config(&opts.out, &cfg)?;
        }
        let mut trainer = Trainer::new_in(gpu.clone(), cfg.clone(), iters_per_epoch, opts.collective.clone())?;
        let tune = gpu.tuner.stats();
        if tune.tuned + tune.cached > 0 {
            eprintln!(
                "tuned GEMM kernels for {} op shapes in {:.1} s ({} more from the cache)",
                tune.tuned, tune.seconds, tune.cached
            );
        }
        match &resume_file {
            Some(f) => {
                trainer.load_checkpoint(f)?;
                eprintln!("resumed from {} at iteration {}", f.display(), trainer.iteration);
            }
            None => trainer.init_random(cfg.seed)?,
        }
        let total = cfg.epochs.saturating_mul(iters_per_epoch);
        announce(&cfg, &gpu, &trainer, &train_set, &opts, iters_per_epoch)?;
        let interrupted = Arc::new(AtomicBool::new(false));
        {
            let flag = interrupted.clone();
            // Only one handler per process; a second run in the same process keeps the first.
            let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
        }
        let resumed_at = resume_file.is_some().then_some(trainer.iteration);
        let metrics = if rank == 0 { Metrics::open(&opts.out, resumed_at)? } else { Metrics::silent() };
        let slice = crate::data::loader::RankSlice { rank, world };
        let prefetch = Prefetcher::new(
            train_set.clone(),
            cfg.augment(),
            cfg.batch_size,
            cfg.seed,
            trainer.iteration,
            total,
            slice,
        );
        let terminal = std::io::stderr().is_terminal() && rank == 0;
        let bar = progress_bar(terminal, total, trainer.iteration);
        Ok(Run {
            ckpt: opts.out.join(CHECKPOINT),
            monitor: EpochMonitor::new(cfg.prototypes),
            gpu,
            cfg,
            opts,
            train_set,
            test_set: split.test,
            trainer,
            iters_per_epoch,
            total,
            prefetch,
            metrics,
            bar,
            terminal,
            interrupted,
            start: Instant::now(),
            last_loss: f32::NAN,
            epoch_near_ln_k: true,
            window: Instant::now(),
            window_imgs: 0,
            rate: 0.0,
        })
    }

    fn rank(&self) -> usize {
        self.opts.collective.rank()
    }

    fn say(&self, line: &str) {
        if self.rank() != 0 {
        } else if self.terminal {
            self.bar.println(line)
        } else {
            eprintln!("{line}")
        }
    }

    fn save(&self) -> Result<()> {
        self.trainer.save_checkpoint(&self.ckpt, self.cfg.seed, &HashMap::new())
    }

    /// The faults a test asked for before this iteration (`Faults`).
    #[cfg(feature = "test-hooks")]
    fn inject_faults(&mut self, iteration: usize) -> Result<()> {
        let f = self.opts.faults;
        if f.inject_nan_at == Some(iteration) {
            // Corrupt one prototype, as a diverged update would.
            let mut p = self.trainer.plan.read_named("prototypes.weight")?;
            p[0] = f32::NAN;
            self.trainer.plan.write_named("prototypes.weight", &p)?;
        }
        if f.inject_device_loss_at == Some(iteration) {
            self.gpu.device.destroy();
        }
        if f.inject_gpu_error_at == Some(iteration) {
            self.gpu.inject_rejected_command();
        }
        if f.inject_overflow_at == Some(iteration) {
            self.trainer.inject_overflow()?;
        }
        Ok(())
    }

    /// A row of metrics.jsonl; one that cannot be written stops the run, which continues
    /// from its last checkpoint with --resume (the rows after it are dropped then).
    fn record(&mut self, row: serde_json::Value) -> Result<()> {
        self.metrics.write(row).map_err(|e| {
            self.bar.abandon();
            let at = self.trainer.iteration;
            match self.ckpt.is_file() {
                true => Error::Invalid(format!(
                    "{e}; the run stopped at iteration {at}; its last checkpoint '{}' is intact (continue with --resume {})",
                    self.ckpt.display(),
                    self.opts.out.display()
                )),
                false => Error::Invalid(format!("{e}; the run stopped at iteration {at}, before its first checkpoint")),
            }
        })
    }

    fn plot(&self) {
        if self.rank() != 0 {
            return;
        }
        let m = &self.metrics;
        // The plot is a convenience: failing to write it does not stop the run.
        let _ = std::fs::write(
            self.opts.out.join("loss.svg"),
            plot_svg(&m.losses, &m.knn, 20, &m.epochs, self.cfg.prototypes),
        );
    }

    /// The k-NN top-1 (k = 20, 200) of the current backbone, where both splits are labelled.
    fn knn(&self) -> Result<Option<(f64, f64)>> {
        let Some(test) = &self.test_set else { return Ok(None) };
        if self.rank() != 0 {
            return Ok(None);
        }
        if !(self.train_set.is_labelled() && test.is_labelled()) {
            return Ok(None);
        }
        let size = eval_size(&self.train_set, &self.cfg);
        let fx = FeatureExtractor::new(self.gpu.clone(), &self.cfg.backbone()?, 256, size)?;
        let state = self.trainer.state_blocking()?;
        fx.load(&state.into_iter().filter(|(k, _)| is_backbone_key(k)).collect())?;
        knn_eval(&fx, &self.train_set, test, 0.1).map(Some)
    }

    /// One optimizer step on `batch`, recorded; a checkpoint when one is due. A non-finite
    /// loss stops the run with the tensor it first appeared in (nothing was updated). A step
    /// that loss scaling skipped (its gradients overflowed) is recorded as such.
    fn step(&mut self, batch: &Batch) -> Result<()> {
        #[cfg(feature = "test-hooks")]
        self.inject_faults(batch.iteration)?;
        let refs: Vec<&[f32]> = batch.crops.iter().map(|c| c.as_slice()).collect();
        let (it, epoch) = (self.trainer.iteration, self.trainer.iteration / self.iters_per_epoch);
        let lr = self.trainer.lr();
        let scale = self.trainer.scaler.scale;
        let comm_before = self.trainer.plan.comm_stats();
        let loss = self.trainer.step(&refs)?;
        let comm = self.trainer.plan.comm_stats();
        if !loss.is_finite() {
            self.bar.abandon();
            let culprit = diagnose_nan(&self.trainer, self.gpu.clone(), &batch.crops);
            // The loss's error is the one to report; a row that cannot be written adds nothing.
            let row = serde_json::json!({"iteration": it, "epoch": epoch, "loss": null, "error": "non-finite loss"});
            self.metrics.write(row).ok();
            return Err(Error::Invalid(format!(
                "the loss became {loss} at iteration {it} (epoch {epoch}); it first appeared in {culprit}. The parameters were not updated; the last good checkpoint '{}' is intact",
                self.ckpt.display()
            )));
        }
        // Every step: the step is done (its loss is read), so reading its codes waits for
        // nothing (well under 1 % of a step on lavapipe).
        let codes =
            self.trainer.ids.codes.iter().map(|&c| self.trainer.plan.read_blocking(c)).collect::<Result<Vec<_>>>()?;
        self.monitor.add_step(loss, &codes);
        self.last_loss = loss;
        self.window_imgs += self.cfg.batch_size * self.opts.collective.world();
        if self.window.elapsed().as_secs_f64() > 2.0 {
            self.rate = self.window_imgs as f64 / self.window.elapsed().as_secs_f64();
            self.window = Instant::now();
            self.window_imgs = 0;
        }
        let rate = self.rate;
        self.metrics.losses.push((it, loss));
        let mut record =
            serde_json::json!({"iteration": it, "epoch": epoch, "loss": loss, "lr": lr, "img_per_s": rate});
        if self.trainer.plan.exchange_count() > 0 {
            // This rank's exchanges of the step: bytes all-reduced, seconds in the all-reduces
            // (waiting for the other ranks included) and reading back what they exchange.
            record["comm_bytes"] = (comm.bytes - comm_before.bytes).into();
            record["comm_seconds"] = (comm.seconds - comm_before.seconds).into();
            record["comm_readback_seconds"] = (comm.readback_seconds - comm_before.readback_seconds).into();
        }
        let scaler = &self.trainer.scaler;
        if scaler.is_on() {
            // The scale the step was seeded with, whether it was skipped, and the skips so far.
            record["loss_scale"] = scale.into();
            record["skipped"] = scaler.last_skipped.into();
            record["skipped_steps"] = scaler.skipped.into();
        }
        self.record(record)?;
        let skipped = self.skipped_text();
        self.bar.set_message(format!("epoch {epoch} loss {loss:.4} lr {lr:.4} {rate:.1} img/s{skipped}"));
        self.bar.inc(1);
        let ln_k = (self.cfg.prototypes as f64).ln();
        self.epoch_near_ln_k &= ((loss as f64) - ln_k).abs() < 0.02 * ln_k;
        let done = self.trainer.iteration;
        let every = self.opts.checkpoint_every;
        if (every > 0 && done.is_multiple_of(every)) || (every == 0 && done.is_multiple_of(self.iters_per_epoch)) {
            self.save()?;
        }
        Ok(())
    }

    /// "  skipped N" once loss scaling has skipped steps of the run, else nothing.
    fn skipped_text(&self) -> String {
        match self.trainer.scaler.skipped {
            0 => String::new(),
            n => format!("  skipped {n}"),
        }
    }

    /// The epoch's line (loss, code entropy, prototypes in use, speed, k-NN when due), its
    /// metrics record and the plot; the collapse warning.
    fn end_epoch(&mut self) -> Result<()> {
        let done = self.trainer.iteration;
        let epoch = done / self.iters_per_epoch;
        let (step_seconds, img_per_s) = self.monitor.speed(self.cfg.batch_size * self.opts.collective.world());
        if self.epoch_near_ln_k {
            let ln_k = (self.cfg.prototypes as f64).ln();
            self.say(&format!("warning: the loss stayed at ln K = {ln_k:.3} for all of epoch {} — SwAV has collapsed (uniform codes and predictions); see the README's notes on small-data settings", epoch - 1));
        }
        self.epoch_near_ln_k = true;
        let every = self.opts.eval_every;
        let knn = if every > 0 && epoch.is_multiple_of(every) && done < self.total { self.knn()? } else { None };
        let point = EpochPoint {
            iteration: done,
            code_entropy: self.monitor.code_entropy(),
            prototypes_in_use: self.monitor.prototypes_in_use(),
        };
        let loss_mean = self.monitor.loss_sum / self.monitor.steps.max(1) as f64;
        let mut line = serde_json::json!({
            "epoch": epoch,
            "iteration": done,
            "loss_mean": loss_mean,
            "code_entropy": point.code_entropy,
            "prototypes_in_use": point.prototypes_in_use,
            "img_per_s": img_per_s,
        });
        let mut text = format!(
            "epoch {epoch}/{}  loss {loss_mean:.4}  entropy {:.2}  prototypes {}/{}  {img_per_s:.0} img/s  eta {}",
            self.cfg.epochs,
            point.code_entropy,
            point.prototypes_in_use,
            self.cfg.prototypes,
            format_duration((self.total - done) as f64 * step_seconds)
        );
        text += &self.skipped_text();
        if let Some((k20, k200)) = knn {
            line["knn_top1"] = k20.into();
            line["knn_top1_k200"] = k200.into();
            text += &format!("  k-NN {k20:.2} % (k=200: {k200:.2} %)");
            self.metrics.knn.push((done, k20));
        }
        self.record(line)?;
        self.metrics.epochs.push(point);
        self.say(&text);
        self.plot();
        self.monitor = EpochMonitor::new(self.cfg.prototypes);
        Ok(())
    }

    /// `--stop-at`: a checkpoint, and how to continue.
    fn stop(self) -> Result<RunSummary> {
        self.bar.finish_and_clear();
        let why = format!("stopped at iteration {} of {} (--stop-at)", self.trainer.iteration, self.total);
        self.halt(&why, false)
    }

    /// Ctrl-C: a checkpoint, and how to continue.
    fn interrupt(self) -> Result<RunSummary> {
        self.bar.abandon();
        let why = format!("interrupted at iteration {}", self.trainer.iteration);
        self.halt(&why, true)
    }

    /// Ends the run before its last iteration: a checkpoint, and how to continue.
    fn halt(self, why: &str, interrupted: bool) -> Result<RunSummary> {
        self.save()?;
        if self.rank() == 0 {
            eprintln!(
                "{why}: checkpoint saved to {}; continue with --resume {}",
                self.ckpt.display(),
                self.opts.out.display()
            );
        }
        Ok(RunSummary {
            iterations: self.trainer.iteration,
            final_loss: self.last_loss,
            knn_top1: None,
            seconds: self.start.elapsed().as_secs_f64(),
            interrupted,
        })
    }

    /// The last checkpoint, the exported backbone and the final k-NN evaluation.
    fn finish(mut self) -> Result<RunSummary> {
        self.bar.finish_and_clear();
        self.save()?;
        let (total, last_loss) = (self.total, self.last_loss);
        let seconds = self.start.elapsed().as_secs_f64();
        if self.rank() != 0 {
            return Ok(RunSummary {
                iterations: total,
                final_loss: last_loss,
                knn_top1: None,
                seconds,
                interrupted: false,
            });
        }
        self.trainer.export_backbone(&self.opts.out.join("backbone.safetensors"))?;
        eprintln!(
            "trained {total} iterations in {seconds:.0} s; final loss {last_loss:.4}; checkpoint {}",
            self.ckpt.display()
        );
        let mut knn = None;
        if let Some((k20, k200)) = self.knn()? {
            println!("k-NN top-1 on the test split: {k20:.2} % (k=20), {k200:.2} % (k=200)");
            self.metrics.knn.push((total, k20));
            self.record(
                serde_json::json!({"iteration": total, "epoch": self.cfg.epochs, "knn_top1": k20, "knn_top1_k200": k200}),
            )?;
            knn = Some(k20);
        } else {
            eprintln!("no labelled test split: skipping the k-NN evaluation");
        }
        self.plot();
        Ok(RunSummary { iterations: total, final_loss: last_loss, knn_top1: knn, seconds, interrupted: false })
    }
}

/// The first lines of a run: what trains on what (rank 0), and each rank's exchanges.
fn announce(
    cfg: &TrainConfig,
    gpu: &Gpu,
    trainer: &Trainer,
    train_set: &Dataset,
    opts: &RunOptions,
    iters_per_epoch: usize,
) -> Result<()> {
    let (rank, world) = (opts.collective.rank(), opts.collective.world());
    let global_batch = cfg.batch_size * world;
    if world > 1 {
        eprintln!(
            "rank {rank}: {} on {}, {} exchanges per step",
            opts.collective.describe(),
            gpu.describe(),
            trainer.plan.exchange_count()
        );
    }
    if rank == 0 {
        eprintln!("{}", trainer.plan.report.memory);
        eprintln!(
        "training {} x{} ({} stem, {:.1} MFLOP forward per image) on {} ({} images, {} per epoch), {} epochs, batch {}, crops {}, {} prototypes, {} activations, adapter {}",
        cfg.arch,
        cfg.width,
        cfg.stem,
        cfg.forward_flops_per_image()? / 1e6,
        train_set.source,
        train_set.len(),
        iters_per_epoch * cfg.batch_size,
        cfg.epochs,
        cfg.batch_size,
        cfg.crops.iter().map(|c| format!("{}x{}", c.count, c.size)).collect::<Vec<_>>().join("+"),
        cfg.prototypes,
        cfg.precision,
        gpu.describe()
    );
        if world > 1 {
            eprintln!(
                "data-parallel over {world} ranks: global batch {global_batch}, gradients averaged{}, queue {} rows per rank",
                if cfg.sync_bn { ", batch-norm synchronised" } else { ", batch-norm per rank" },
                trainer.swav().effective_queue_length()
            );
        }
    }
    Ok(())
}

/// The progress bar (hidden when stderr is not a terminal).
fn progress_bar(terminal: bool, total: usize, position: usize) -> indicatif::ProgressBar {
    let bar = if terminal { indicatif::ProgressBar::new(total as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} it  {msg}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(position as u64);
    bar
}
