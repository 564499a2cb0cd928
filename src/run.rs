//! `swav-wgpu train`: the training run around the compiled step: data and augmentation
//! workers, progress bar, metrics.jsonl and a loss plot, periodic atomic checkpoints, Ctrl-C,
//! NaN diagnosis, the collapse warning, and the final k-NN evaluation.
use std::collections::HashMap;
use std::io::Write;
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

pub struct RunOptions {
    pub data: Option<PathBuf>,
    pub test_data: Option<PathBuf>,
    pub out: PathBuf,
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
        let mut m = Metrics { file, losses: Vec::new(), knn: Vec::new() };
        if resume {
            // Earlier points of the run, for the plot.
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text.lines() {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                        match (v["iteration"].as_u64(), v["loss"].as_f64(), v["knn_top1"].as_f64()) {
                            (Some(i), Some(l), _) => m.losses.push((i as usize, l as f32)),
                            (Some(i), _, Some(k)) => m.knn.push((i as usize, k)),
                            _ => {}
                        }
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

/// A self-contained SVG of the loss per iteration (left axis) and k-NN top-1 (right axis).
pub fn plot_svg(losses: &[(usize, f32)], knn: &[(usize, f64)], k: usize) -> String {
    let (w, h, pad) = (800.0, 320.0, 50.0);
    let max_it = losses.iter().map(|p| p.0).chain(knn.iter().map(|p| p.0)).max().unwrap_or(1).max(1) as f64;
    let finite: Vec<f32> = losses.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo as f64, hi as f64) } else { (0.0, 1.0) };
    let x = |it: usize| pad + (w - 2.0 * pad) * it as f64 / max_it;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let yk = |v: f64| h - pad - (h - 2.0 * pad) * v / 100.0;
    let points: Vec<String> =
        losses.iter().filter(|p| p.1.is_finite()).map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1 as f64))).collect();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
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
    let split = open_data(opts.data.as_deref(), opts.test_data.as_deref(), opts.max_side)?;
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
    match &resume_file {
        Some(f) => {
            trainer.load_checkpoint(f)?;
            eprintln!("resumed from {} at iteration {}", f.display(), trainer.iteration);
        }
        None => trainer.init_random(cfg.seed)?,
    }
    let total = cfg.epochs * iters_per_epoch;
    eprintln!(
        "training {} x{} ({} stem) on {} ({} images, {} per epoch), {} epochs, batch {}, crops {}, {} prototypes, adapter {}",
        cfg.arch,
        cfg.width,
        cfg.stem,
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
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} it  {msg}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(trainer.iteration as u64);
    let ln_k = (cfg.prototypes as f64).ln();
    let mut epoch_near_ln_k = true;
    let start = Instant::now();
    let mut last_loss = f32::NAN;
    let mut window = Instant::now();
    let mut window_imgs = 0usize;
    let mut rate = 0.0;
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
            if epoch_near_ln_k {
                bar.println(format!("warning: the loss stayed at ln K = {ln_k:.3} for all of epoch {} — SwAV has collapsed (uniform codes and predictions); see the README's notes on small-data settings", epoch - 1));
            }
            epoch_near_ln_k = true;
            if opts.eval_every > 0 && epoch.is_multiple_of(opts.eval_every) && done < total {
                if let Some((k20, _)) = extractor_and_sets(&trainer)? {
                    bar.println(format!("epoch {epoch}: k-NN top-1 (k=20) {k20:.2} %"));
                    metrics.knn.push((done, k20));
                    metrics.write(serde_json::json!({"iteration": done, "epoch": epoch, "knn_top1": k20}));
                }
            }
            let _ = std::fs::write(opts.out.join("loss.svg"), plot_svg(&metrics.losses, &metrics.knn, 20));
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
    let _ = std::fs::write(opts.out.join("loss.svg"), plot_svg(&metrics.losses, &metrics.knn, 20));
    Ok(RunSummary { iterations: total, final_loss: last_loss, knn_top1: knn, seconds, interrupted: false })
}
