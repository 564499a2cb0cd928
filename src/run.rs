//! `swav-wgpu train`: the training run around the compiled step: data and augmentation
//! workers, progress bar, metrics.jsonl and a loss plot, periodic atomic checkpoints, Ctrl-C,
//! NaN diagnosis, the collapse warning, a per-epoch learning monitor (Sinkhorn code entropy,
//! prototypes in use, k-NN), and the final k-NN evaluation.
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::data::loader::Prefetcher;
use crate::data::{self, DataSplit, Dataset};
use crate::error::{Error, Result};
use crate::eval::{knn_top1, FeatureExtractor};
use crate::gpu::Gpu;
use crate::graph::plan::Plan;
use crate::graph::{Graph, Kind};
use crate::train::checkpoint::is_backbone_key;
use crate::train::{build_graph, TrainConfig, Trainer};

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
    pub max_side: usize,
    /// Test hook: put a NaN into the prototypes before this iteration (the divergence path).
    pub inject_nan_at: Option<usize>,
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

/// Opens the data, with `--test-data` (when given) as the held-out split.
pub fn open_data(data: Option<&Path>, test: Option<&Path>, max_side: usize) -> Result<DataSplit> {
    let mut split = data::open(data, max_side)?;
    if let Some(t) = test {
        split.test = Some(data::open(Some(t), max_side)?.train);
    }
    Ok(split)
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
    let first = ds.images.first().map(|i| (i.width, i.height));
    if first.is_some_and(|(w, h)| w == h && ds.images.iter().all(|i| (i.width, i.height) == (w, h))) {
        first.map(|(w, _)| w).unwrap_or(32)
    } else {
        cfg.crops.iter().map(|c| c.size).max().unwrap_or(32)
    }
}

fn write_config(out: &Path, cfg: &TrainConfig) -> Result<()> {
    std::fs::write(out.join("config.toml"), cfg.to_toml())
        .map_err(|e| Error::Invalid(format!("cannot write '{}': {e}", out.join("config.toml").display())))
}

struct Metrics {
    file: std::fs::File,
    losses: Vec<(usize, f32)>,
    knn: Vec<(usize, f64)>,
    epochs: Vec<EpochPoint>,
}

impl Metrics {
    fn open(out: &Path, resume: bool) -> Result<Metrics> {
        let path = out.join("metrics.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(resume)
            .write(true)
            .truncate(!resume)
            .open(&path)
            .map_err(|e| Error::Invalid(format!("cannot open '{}': {e}", path.display())))?;
        let mut m = Metrics { file, losses: Vec::new(), knn: Vec::new(), epochs: Vec::new() };
        if resume {
            // Earlier points of the run, for the plot.
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text.lines() {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                    let Some(it) = v["iteration"].as_u64().map(|i| i as usize) else { continue };
                    if let Some(l) = v["loss"].as_f64() {
                        m.losses.push((it, l as f32));
                    }
                    if let Some(k) = v["knn_top1"].as_f64() {
                        m.knn.push((it, k));
                    }
                    if let (Some(e), Some(p)) = (v["code_entropy"].as_f64(), v["prototypes_in_use"].as_u64()) {
                        m.epochs.push(EpochPoint { iteration: it, code_entropy: e, prototypes_in_use: p as usize });
                    }
                }
            }
        }
        Ok(m)
    }
    fn write(&mut self, v: serde_json::Value) {
        let _ = writeln!(self.file, "{v}");
    }
}

/// One epoch of the learning monitor, as plotted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    /// Iterations done at the end of the epoch.
    pub iteration: usize,
    /// Mean entropy (nats) of the rows of Sinkhorn's codes: ln K = uniform codes, 0 = hard.
    pub code_entropy: f64,
    /// Prototypes that were the argmax of at least one code row in the epoch.
    pub prototypes_in_use: usize,
}

/// What the monitor gathers over one epoch: losses, codes, and the time of its steps.
struct EpochMonitor {
    loss_sum: f64,
    steps: usize,
    entropy_sum: f64,
    code_rows: usize,
    in_use: Vec<bool>,
    start: Instant,
}

impl EpochMonitor {
    fn new(prototypes: usize) -> EpochMonitor {
        EpochMonitor {
            loss_sum: 0.0,
            steps: 0,
            entropy_sum: 0.0,
            code_rows: 0,
            in_use: vec![false; prototypes],
            start: Instant::now(),
        }
    }

    /// Seconds per step and images per second of the epoch so far.
    fn speed(&self, batch: usize) -> (f64, f64) {
        let seconds = self.start.elapsed().as_secs_f64().max(1e-9);
        let steps = self.steps.max(1) as f64;
        (seconds / steps, steps * batch as f64 / seconds)
    }

    /// One step: its loss and the codes [batch, K] of each assignment crop.
    fn add_step(&mut self, loss: f32, codes: &[Vec<f32>]) {
        self.loss_sum += loss as f64;
        self.steps += 1;
        codes.iter().for_each(|c| self.add_codes(c));
    }

    /// Adds the codes [batch, K] of one assignment crop. Rows are renormalised to sum to 1
    /// (Sinkhorn's Q * B rows do up to rounding).
    fn add_codes(&mut self, codes: &[f32]) {
        let k = self.in_use.len();
        for row in codes.chunks_exact(k) {
            let sum: f64 = row.iter().map(|&q| q as f64).sum();
            if !(sum.is_finite() && sum > 0.0) {
                continue;
            }
            let entropy: f64 = row.iter().map(|&q| q as f64 / sum).filter(|&p| p > 0.0).map(|p| -p * p.ln()).sum();
            self.entropy_sum += entropy;
            self.code_rows += 1;
            let argmax = row.iter().enumerate().fold(0, |best, (i, &q)| if q > row[best] { i } else { best });
            self.in_use[argmax] = true;
        }
    }

    fn code_entropy(&self) -> f64 {
        if self.code_rows == 0 {
            f64::NAN
        } else {
            self.entropy_sum / self.code_rows as f64
        }
    }

    fn prototypes_in_use(&self) -> usize {
        self.in_use.iter().filter(|&&u| u).count()
    }
}

/// 42s, 6m12s, 1h05m.
fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A self-contained SVG: the loss per iteration (left axis) and k-NN top-1 (right axis) on
/// top; below, per epoch, the mean entropy of Sinkhorn's codes (0 to ln K, left) and the
/// prototypes in use (0 to K, right).
pub fn plot_svg(
    losses: &[(usize, f32)],
    knn: &[(usize, f64)],
    k: usize,
    epochs: &[EpochPoint],
    prototypes: usize,
) -> String {
    let (w, h, pad, h2) = (800.0, 320.0, 50.0, 220.0);
    let total_h = if epochs.is_empty() { h } else { h + h2 };
    let max_it = losses
        .iter()
        .map(|p| p.0)
        .chain(knn.iter().map(|p| p.0))
        .chain(epochs.iter().map(|p| p.iteration))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let finite: Vec<f32> = losses.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo as f64, hi as f64) } else { (0.0, 1.0) };
    let x = |it: usize| pad + (w - 2.0 * pad) * it as f64 / max_it;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let yk = |v: f64| h - pad - (h - 2.0 * pad) * v / 100.0;
    let points: Vec<String> =
        losses.iter().filter(|p| p.1.is_finite()).map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1 as f64))).collect();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{total_h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    s += &format!(r#"<text x="{pad}" y="20">SwAV training loss (blue) and k-NN top-1, k={k} (orange)</text>"#);
    s += &format!(
        r#"<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{}" stroke="black"/>"#,
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    s += &format!(r#"<text x="5" y="{:.0}">{hi:.3}</text><text x="5" y="{:.0}">{lo:.3}</text>"#, pad + 4.0, h - pad);
    s += &format!(
        r#"<text x="{pad}" y="{:.0}">0</text><text x="{:.0}" y="{:.0}">{} iterations</text>"#,
        h - pad + 16.0,
        w - pad - 90.0,
        h - pad + 16.0,
        max_it as usize
    );
    s += &format!(r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##, points.join(" "));
    if !knn.is_empty() {
        s += &format!(
            r#"<line x1="{}" y1="{pad}" x2="{}" y2="{}" stroke="black"/><text x="{}" y="{:.0}">100%</text><text x="{}" y="{:.0}">0%</text>"#,
            w - pad,
            w - pad,
            h - pad,
            w - pad + 4.0,
            pad + 4.0,
            w - pad + 4.0,
            h - pad
        );
        for (it, v) in knn {
            s += &format!(
                r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#ff7f0e"/><text x="{:.1}" y="{:.1}" fill="#ff7f0e">{v:.1}%</text>"##,
                x(*it),
                yk(*v),
                x(*it) + 6.0,
                yk(*v) - 6.0
            );
        }
    }
    if !epochs.is_empty() {
        // The monitor panel, below the loss: both series on their own full-range scales, so a
        // collapse (entropy at ln K, or few prototypes in use) reads at a glance.
        let (top, bottom) = (h + 30.0, h + h2 - 40.0);
        let ln_k = (prototypes.max(2) as f64).ln();
        let ye = |v: f64| bottom - (bottom - top) * (v / ln_k).clamp(0.0, 1.0);
        let yp = |v: usize| bottom - (bottom - top) * (v as f64 / prototypes.max(1) as f64).min(1.0);
        s += &format!(
            r##"<text x="{pad}" y="{:.0}"><tspan fill="#2ca02c">code entropy (nats, left)</tspan> and <tspan fill="#9467bd">prototypes in use (right)</tspan> per epoch</text>"##,
            h + 15.0
        );
        s += &format!(
            r#"<line x1="{pad}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/><line x1="{pad}" y1="{top}" x2="{pad}" y2="{bottom}" stroke="black"/><line x1="{}" y1="{top}" x2="{}" y2="{bottom}" stroke="black"/>"#,
            w - pad,
            w - pad,
            w - pad
        );
        s += &format!(
            r##"<text x="5" y="{:.0}" fill="#2ca02c">{ln_k:.2}</text><text x="5" y="{:.0}" fill="#2ca02c">0</text><text x="{:.0}" y="{:.0}" fill="#9467bd">{prototypes}</text><text x="{:.0}" y="{:.0}" fill="#9467bd">0</text>"##,
            top + 4.0,
            bottom,
            w - pad + 4.0,
            top + 4.0,
            w - pad + 4.0,
            bottom
        );
        s += &format!(
            r#"<text x="{pad}" y="{:.0}">0</text><text x="{:.0}" y="{:.0}">{} iterations</text>"#,
            bottom + 16.0,
            w - pad - 90.0,
            bottom + 16.0,
            max_it as usize
        );
        let finite = epochs.iter().filter(|p| p.code_entropy.is_finite());
        let entropy: Vec<String> = finite.map(|p| format!("{:.1},{:.1}", x(p.iteration), ye(p.code_entropy))).collect();
        let in_use: Vec<String> =
            epochs.iter().map(|p| format!("{:.1},{:.1}", x(p.iteration), yp(p.prototypes_in_use))).collect();
        for (pts, colour) in [(entropy, "#2ca02c"), (in_use, "#9467bd")] {
            s += &format!(r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#, pts.join(" "));
            for p in &pts {
                if let Some((cx, cy)) = p.split_once(',') {
                    s += &format!(r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#);
                }
            }
        }
    }
    s + "</svg>\n"
}

/// Re-runs the failed step with every activation kept and names the first tensor, in
/// execution order, that holds a NaN or an infinity.
fn diagnose_nan(trainer: &Trainer, gpu: Arc<Gpu>, crops: &[Vec<f32>]) -> String {
    for (i, c) in crops.iter().enumerate() {
        if let Some(p) = c.iter().position(|v| !v.is_finite()) {
            return format!("input crop{i} (element {p}: {})", c[p]);
        }
    }
    let result = (|| -> Result<String> {
        let mut g: Graph = build_graph(&trainer.cfg)?.graph;
        for t in 0..g.tensors.len() {
            g.tensors[t].keep = true;
        }
        let plan = Plan::compile(&g, gpu)?;
        let state = trainer.state_blocking()?;
        for (name, t) in g.named(Kind::Parameter).into_iter().chain(g.named(Kind::Buffer)) {
            if let Some(v) = state.get(&name) {
                plan.write(t, &v.data)?;
            }
        }
        for (i, c) in crops.iter().enumerate() {
            plan.write_named(&format!("crop{i}"), c)?;
        }
        plan.write_named("optimizer.state", &[0.0; crate::optim::STATE_LEN])?;
        if let Some(q) = g.by_name("queue.active") {
            plan.write(q, &[0.0])?;
        }
        plan.step();
        for (k, info) in g.tensors.iter().enumerate() {
            if info.kind == Kind::Parameter || info.kind == Kind::Buffer {
                let v = plan.read_blocking(crate::graph::TensorId(k))?;
                if let Some(p) = v.iter().position(|x| !x.is_finite()) {
                    return Ok(format!("{:?} '{}' (element {p}: {})", info.kind, info.name, v[p]));
                }
            }
        }
        for (i, op) in g.ops.iter().enumerate() {
            for out in op.outputs() {
                let v = plan.read_blocking(out)?;
                if let Some(p) = v.iter().position(|x| !x.is_finite()) {
                    let named: Vec<String> =
                        op.inputs().iter().map(|t| &g.info(*t).name).filter(|n| n.contains('.')).cloned().collect();
                    let kind = format!("{op:?}");
                    let kind = kind.split([' ', '{']).next().unwrap_or("op");
                    return Ok(format!(
                        "the output '{}' of op #{i} {kind}{} (element {p}: {})",
                        g.info(out).name,
                        if named.is_empty() { String::new() } else { format!(" reading {}", named.join(", ")) },
                        v[p]
                    ));
                }
            }
        }
        Ok("no single tensor (the replay was finite: a transient fault?)".into())
    })();
    result.unwrap_or_else(|e| format!("(diagnosis failed: {e})"))
}

/// The training run. Errors name the file or flag at fault.
pub fn train(gpu: Arc<Gpu>, cfg: TrainConfig, opts: RunOptions) -> Result<RunSummary> {
    let resume_file = opts.resume.as_deref().map(resolve_resume).transpose()?;
    cfg.validate()?;
    let data = cfg.data.as_deref().map(Path::new);
    let split = open_data(data, cfg.test_data.as_deref().map(Path::new), opts.max_side)?;
    let train_set = Arc::new(split.train);
    if train_set.len() < cfg.batch_size {
        return Err(Error::Invalid(format!(
            "--batch-size {} is larger than the dataset ({} images in {})",
            cfg.batch_size,
            train_set.len(),
            train_set.source
        )));
    }
    let iters_per_epoch = train_set.len() / cfg.batch_size;
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| Error::Invalid(format!("cannot create --out '{}': {e}", opts.out.display())))?;
    write_config(&opts.out, &cfg)?;
    let mut trainer = Trainer::new(gpu.clone(), cfg.clone(), iters_per_epoch)?;
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
    let total = cfg.epochs * iters_per_epoch;
    eprintln!(
        "training {} x{} ({} stem, {:.1} MFLOP forward per image) on {} ({} images, {} per epoch), {} epochs, batch {}, crops {}, {} prototypes, adapter {}",
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
        gpu.describe()
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Only one handler per process; a second run in the same process keeps the first.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let mut metrics = Metrics::open(&opts.out, resume_file.is_some())?;
    let ckpt = opts.out.join(CHECKPOINT);
    let save = |t: &Trainer| t.save_checkpoint(&ckpt, cfg.seed, &HashMap::new());
    let aug = cfg.augment();
    let prefetch = Prefetcher::new(train_set.clone(), aug, cfg.batch_size, cfg.seed, trainer.iteration, total);
    // indicatif hides its bar (and its println) when stderr is not a terminal: there, a log
    // gets one plain line per epoch instead.
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal { indicatif::ProgressBar::new(total as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} it  {msg}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(trainer.iteration as u64);
    let say = |line: &str| if terminal { bar.println(line) } else { eprintln!("{line}") };
    let ln_k = (cfg.prototypes as f64).ln();
    let mut epoch_near_ln_k = true;
    let start = Instant::now();
    let mut last_loss = f32::NAN;
    let mut window = Instant::now();
    let mut window_imgs = 0usize;
    let mut rate = 0.0;
    let mut monitor = EpochMonitor::new(cfg.prototypes);
    let extractor_and_sets = |t: &Trainer| -> Result<Option<(f64, f64)>> {
        let Some(test) = &split.test else { return Ok(None) };
        if !(train_set.is_labelled() && test.is_labelled()) {
            return Ok(None);
        }
        let fx = FeatureExtractor::new(gpu.clone(), &cfg.backbone()?, 256, eval_size(&train_set, &cfg))?;
        let state = t.state_blocking()?;
        fx.load(&state.into_iter().filter(|(k, _)| is_backbone_key(k)).collect())?;
        knn_eval(&fx, &train_set, test, 0.1).map(Some)
    };
    while trainer.iteration < total {
        let Some(batch) = prefetch.next() else {
            return Err(Error::Invalid("the data workers stopped unexpectedly".into()));
        };
        if opts.inject_nan_at == Some(batch.iteration) {
            // Test hook: corrupt one prototype, as a diverged update would.
            let mut p = trainer.plan.read_named("prototypes.weight")?;
            p[0] = f32::NAN;
            trainer.plan.write_named("prototypes.weight", &p)?;
        }
        let refs: Vec<&[f32]> = batch.crops.iter().map(|c| c.as_slice()).collect();
        let it = trainer.iteration;
        let lr = trainer.lr();
        let loss = trainer.step(&refs)?;
        if !loss.is_finite() {
            bar.abandon();
            let culprit = diagnose_nan(&trainer, gpu.clone(), &batch.crops);
            metrics.write(serde_json::json!({"iteration": it, "epoch": it / iters_per_epoch, "loss": null, "error": "non-finite loss"}));
            return Err(Error::Invalid(format!(
                "the loss became {loss} at iteration {it} (epoch {}); it first appeared in {culprit}. The parameters were not updated; the last good checkpoint '{}' is intact",
                it / iters_per_epoch,
                ckpt.display()
            )));
        }
        // Every step: the step is done (its loss is read), so reading its codes waits for
        // nothing; on lavapipe the default run spends ~0.6 ms a step on it, under 0.3 %.
        let codes = trainer.ids.codes.iter().map(|&c| trainer.plan.read_blocking(c)).collect::<Result<Vec<_>>>()?;
        monitor.add_step(loss, &codes);
        last_loss = loss;
        window_imgs += cfg.batch_size;
        if window.elapsed().as_secs_f64() > 2.0 {
            rate = window_imgs as f64 / window.elapsed().as_secs_f64();
            window = Instant::now();
            window_imgs = 0;
        }
        metrics.losses.push((it, loss));
        metrics.write(serde_json::json!({"iteration": it, "epoch": it / iters_per_epoch, "loss": loss, "lr": lr, "img_per_s": rate}));
        bar.set_message(format!("epoch {} loss {loss:.4} lr {lr:.4} {rate:.1} img/s", it / iters_per_epoch));
        bar.inc(1);
        epoch_near_ln_k &= ((loss as f64) - ln_k).abs() < 0.02 * ln_k;
        let done = trainer.iteration;
        let epoch_end = done.is_multiple_of(iters_per_epoch);
        if (opts.checkpoint_every > 0 && done.is_multiple_of(opts.checkpoint_every))
            || (opts.checkpoint_every == 0 && epoch_end)
        {
            save(&trainer)?;
        }
        if epoch_end {
            let epoch = done / iters_per_epoch;
            let (step_seconds, img_per_s) = monitor.speed(cfg.batch_size);
            if epoch_near_ln_k {
                say(&format!("warning: the loss stayed at ln K = {ln_k:.3} for all of epoch {} — SwAV has collapsed (uniform codes and predictions); see the README's notes on small-data settings", epoch - 1));
            }
            epoch_near_ln_k = true;
            let knn = if opts.eval_every > 0 && epoch.is_multiple_of(opts.eval_every) && done < total {
                extractor_and_sets(&trainer)?
            } else {
                None
            };
            let point = EpochPoint {
                iteration: done,
                code_entropy: monitor.code_entropy(),
                prototypes_in_use: monitor.prototypes_in_use(),
            };
            let loss_mean = monitor.loss_sum / monitor.steps.max(1) as f64;
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
                cfg.epochs,
                point.code_entropy,
                point.prototypes_in_use,
                cfg.prototypes,
                format_duration((total - done) as f64 * step_seconds)
            );
            if let Some((k20, k200)) = knn {
                line["knn_top1"] = k20.into();
                line["knn_top1_k200"] = k200.into();
                text += &format!("  k-NN {k20:.2} % (k=200: {k200:.2} %)");
                metrics.knn.push((done, k20));
            }
            metrics.write(line);
            metrics.epochs.push(point);
            say(&text);
            let _ = std::fs::write(
                opts.out.join("loss.svg"),
                plot_svg(&metrics.losses, &metrics.knn, 20, &metrics.epochs, cfg.prototypes),
            );
            monitor = EpochMonitor::new(cfg.prototypes);
        }
        if interrupted.load(Ordering::SeqCst) {
            bar.abandon();
            save(&trainer)?;
            eprintln!(
                "interrupted at iteration {done}: checkpoint saved to {}; continue with --resume {}",
                ckpt.display(),
                opts.out.display()
            );
            return Ok(RunSummary {
                iterations: done,
                final_loss: last_loss,
                knn_top1: None,
                seconds: start.elapsed().as_secs_f64(),
                interrupted: true,
            });
        }
    }
    bar.finish_and_clear();
    save(&trainer)?;
    trainer.export_backbone(&opts.out.join("backbone.safetensors"))?;
    let seconds = start.elapsed().as_secs_f64();
    eprintln!("trained {total} iterations in {seconds:.0} s; final loss {last_loss:.4}; checkpoint {}", ckpt.display());
    let mut knn = None;
    if let Some((k20, k200)) = extractor_and_sets(&trainer)? {
        println!("k-NN top-1 on the test split: {k20:.2} % (k=20), {k200:.2} % (k=200)");
        metrics.knn.push((total, k20));
        metrics.write(
            serde_json::json!({"iteration": total, "epoch": cfg.epochs, "knn_top1": k20, "knn_top1_k200": k200}),
        );
        knn = Some(k20);
    } else {
        eprintln!("no labelled test split: skipping the k-NN evaluation");
    }
    let _ = std::fs::write(
        opts.out.join("loss.svg"),
        plot_svg(&metrics.losses, &metrics.knn, 20, &metrics.epochs, cfg.prototypes),
    );
    Ok(RunSummary { iterations: total, final_loss: last_loss, knn_top1: knn, seconds, interrupted: false })
}
