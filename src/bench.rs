//! `swav-wgpu bench`: what a user runs on their own GPU to see where the time goes. The
//! adapter; matmul and conv GFLOP/s for the kernel the chooser picks (on real GPUs every
//! workgroup tile beside it); training steps per second for three configurations and the
//! heaviest kernels of one step; and the data loader's samples per second beside them, so the
//! limiting side is visible. Kernel times are GPU timestamps where the adapter has them, else
//! queue-synchronised wall time (median of `reps`); step times are wall time, as a user sees
//! them. Every result is also a JSON line for scripts (`benches/gpu/run.sh`).
use std::time::Instant;

use crate::data::loader::{epoch_order, make_batch};
use crate::error::{Error, Result};
use crate::gpu::timing::median;
use crate::gpu::{AdapterClass, DType, Gpu, Tensor};
use crate::graph::plan::Plan;
use crate::ops::conv::{self, Conv2dShape, ConvKernel, ConvPass};
use crate::ops::matmul::{self, GemmVariant, MatmulShape};
use crate::train::config::Precision;
use crate::train::{CropConfig, TrainConfig, Trainer};

pub struct BenchOptions {
    /// Timed repetitions per measurement (the median is reported).
    pub reps: usize,
    /// Small problems and the first step configuration only (software adapters, CI).
    pub quick: bool,
    /// Step configurations by name; empty means `step_configs()` (or its first with `quick`).
    pub configs: Vec<(String, TrainConfig)>,
}

/// The three step configurations of the benchmark: today's small model, ResNet-18 at full
/// width on CIFAR-sized crops, and the paper's ResNet-50 with 2x224 + 6x96 crops.
/// `benches/gpu/*.toml` holds the same for the PyTorch twin (a test keeps them equal).
pub fn step_configs() -> Vec<(String, TrainConfig)> {
    let crops = |large: usize, small: usize, n_small: usize| {
        vec![
            CropConfig { count: 2, size: large, min_scale: 0.14, max_scale: 1.0 },
            CropConfig { count: n_small, size: small, min_scale: 0.05, max_scale: 0.14 },
        ]
    };
    let base = TrainConfig { optimizer: crate::optim::OptimizerKind::Lars, feat_dim: 128, ..TrainConfig::default() };
    vec![
        (
            "r18x0.25-b64".into(),
            TrainConfig {
                arch: crate::model::Arch::ResNet18,
                width: 0.25,
                stem: crate::model::Stem::Cifar,
                batch_size: 64,
                hidden_mlp: 512,
                prototypes: 100,
                crops: crops(32, 16, 4),
                ..base.clone()
            },
        ),
        (
            "r18x1-b256".into(),
            TrainConfig {
                arch: crate::model::Arch::ResNet18,
                width: 1.0,
                stem: crate::model::Stem::Cifar,
                batch_size: 256,
                hidden_mlp: 2048,
                prototypes: 3000,
                crops: crops(32, 16, 4),
                ..base.clone()
            },
        ),
        (
            "r50-b32".into(),
            TrainConfig {
                arch: crate::model::Arch::ResNet50,
                width: 1.0,
                stem: crate::model::Stem::ImageNet,
                batch_size: 32,
                hidden_mlp: 2048,
                prototypes: 3000,
                crops: crops(224, 96, 6),
                ..base
            },
        ),
    ]
}

fn filled(gpu: &Gpu, name: &str, n: usize) -> Result<Tensor> {
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    gpu.tensor_from(name, &[n], &data)
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One measurement, printed for people and as a JSON line (prefixed `json: `) for scripts;
/// `act` is the element type the kernel stores activations in.
fn report_kernel(op: &str, shape: &str, kernel: &str, act: DType, flops: f64, secs: f64) {
    let gflops = flops / secs / 1e9;
    println!("{op:<24} {shape:<30} {act} {kernel:<34} {gflops:9.1} GFLOP/s  ({:.2} ms)", secs * 1e3);
    println!(
        "json: {{\"kind\":\"kernel\",\"op\":\"{op}\",\"shape\":\"{shape}\",\"kernel\":\"{}\",\"precision\":\"{act}\",\"gflops\":{gflops:.3},\"ms\":{:.4}}}",
        json_escape(kernel),
        secs * 1e3
    );
}

/// The activation types to measure: f32, and f16 where the adapter has shader-f16.
fn activation_types(gpu: &Gpu) -> Vec<DType> {
    if gpu.f16 {
        vec![DType::F32, DType::F16]
    } else {
        vec![DType::F32]
    }
}

fn matmul_variants(gpu: &Gpu) -> Vec<GemmVariant> {
    let chosen = GemmVariant::for_matmul(gpu);
    let mut v = vec![chosen];
    if gpu.class == AdapterClass::Gpu {
        v.extend(GemmVariant::WORKGROUP_TILES.into_iter().filter(|t| *t != chosen));
    }
    v
}

fn bench_matmul(gpu: &Gpu, opts: &BenchOptions) -> Result<()> {
    let sizes: &[usize] = if opts.quick { &[256, 1024] } else { &[1024, 4096] };
    for &n in sizes {
        let (a, b, c) = (filled(gpu, "a", n * n)?, filled(gpu, "b", n * n)?, filled(gpu, "c", n * n)?);
        let s = MatmulShape { m: n, n, k: n, trans_a: false, trans_b: false };
        for variant in matmul_variants(gpu) {
            let d = matmul::matmul(gpu, &a, &b, None, &c, s, variant)?;
            let secs = gpu.time_dispatches(&d, opts.reps)?.0;
            // f32 only: the matrix products are the head's, which stays f32 under f16 storage.
            report_kernel(
                "matmul",
                &format!("{n}x{n}x{n}"),
                &variant.name(),
                DType::F32,
                2.0 * (n * n * n) as f64,
                secs,
            );
        }
    }
    Ok(())
}

fn bench_conv(gpu: &Gpu, opts: &BenchOptions) -> Result<()> {
    // The benchmark shape of the README (N64 C64 K64 32x32 3x3), halved in batch when quick.
    let batch = if opts.quick { 16 } else { 64 };
    let s = Conv2dShape::square(batch, 64, 32, 64, 3, 1, 1);
    let shape = format!("N{batch} C64 K64 32x32 3x3 s1 p1");
    for act in activation_types(gpu) {
        let activation = |name: &str, n: usize| -> Result<Tensor> {
            let t = filled(gpu, name, n)?;
            if act == DType::F32 {
                return Ok(t);
            }
            let half = gpu.tensor_of(name, &[n], act)?;
            gpu.run(&[crate::ops::elementwise::cast(gpu, &t, &half)?]);
            Ok(half)
        };
        let (x, y, dx) =
            (activation("x", s.input_len())?, activation("y", s.output_len())?, activation("dx", s.input_len())?);
        let (w, dw) = (filled(gpu, "w", s.weight_len())?, filled(gpu, "dw", s.weight_len())?);
        let kernel = |pass| ConvKernel::choose(gpu, &s, pass);
        let time = |d: Vec<crate::gpu::Dispatch>| gpu.time_dispatches(&d, opts.reps).map(|t| t.0);
        let k = kernel(ConvPass::Forward);
        let secs = time(conv::forward(gpu, &x, &w, &y, s, k)?)?;
        report_kernel("conv2d_forward", &shape, &k.name(), act, s.flops(), secs);
        let k = kernel(ConvPass::BackwardInput);
        let secs = time(conv::backward_input(gpu, &y, &w, &dx, s, k)?)?;
        report_kernel("conv2d_backward_input", &shape, &k.name(), act, s.flops(), secs);
        let k = kernel(ConvPass::BackwardWeight);
        let secs = time(conv::backward_weight(gpu, &x, &y, &dw, s, k, conv::weight_grad_splits(s, k, gpu.class))?)?;
        report_kernel("conv2d_backward_weight", &shape, &k.name(), act, s.flops(), secs);
    }
    Ok(())
}

/// Photos for the loader's rate: 64 generated ImageNet-size JPEGs, cached (and removed) in a
/// temporary folder.
struct LoaderPhotos {
    root: std::path::PathBuf,
}

impl LoaderPhotos {
    fn new() -> LoaderPhotos {
        let root = std::env::temp_dir().join(format!("swav-wgpu-bench-loader-{}", std::process::id()));
        crate::data::photos::write_photo_folder(&root.join("photos"), 4, 16, &[(500, 375), (375, 500)], 0);
        LoaderPhotos { root }
    }

    /// Augmented multi-crop samples per second of the data loader: the config's crops from
    /// the cache at its resolution, on the process's worker threads (as a run reads them).
    fn rate(&self, cfg: &TrainConfig, reps: usize) -> Result<f64> {
        let opts = crate::data::OpenOptions {
            max_side: cfg.image_side(),
            cache_dir: Some(self.root.join("cache")),
            quiet: true,
        };
        let ds = crate::data::open_folder(&self.root.join("photos"), &opts)?;
        let aug = cfg.augment();
        let order = epoch_order(ds.len(), 0, 0);
        let batch = cfg.batch_size.min(ds.len());
        make_batch(&ds, &order[..batch], &aug, 0, 0)?;
        let mut rates = Vec::new();
        for r in 0..reps.max(1) {
            let t = Instant::now();
            let start = (r * batch) % (ds.len() - batch + 1);
            make_batch(&ds, &order[start..start + batch], &aug, 0, 0)?;
            rates.push(batch as f64 / t.elapsed().as_secs_f64());
        }
        Ok(median(rates))
    }
}

impl Drop for LoaderPhotos {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One batch of standard-normal crops in the config's layout (a step's input without the loader).
pub fn random_crops(cfg: &TrainConfig, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = crate::rng::Rng::new(seed);
    cfg.crops
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.size, c.count))
        .map(|s| (0..cfg.batch_size * 3 * s * s).map(|_| rng.normal() as f32).collect())
        .collect()
}

/// Seconds per kernel of one step (`Plan::profile_dispatches`), grouped by the
/// first `depth` parts of the kernel's name: (kernel, seconds, dispatches), slowest first.
pub fn kernel_profile(plan: &Plan, depth: usize) -> Result<Vec<(String, f64, usize)>> {
    let mut by_kernel: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for (label, secs) in plan.profile_dispatches()? {
        let e = by_kernel.entry(label.split('/').take(depth).collect::<Vec<_>>().join("/")).or_default();
        e.0 += secs;
        e.1 += 1;
    }
    let mut rows: Vec<(String, f64, usize)> = by_kernel.into_iter().map(|(k, (s, n))| (k, s, n)).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(rows)
}

fn bench_step(
    gpu: &std::sync::Arc<Gpu>,
    name: &str,
    cfg: &TrainConfig,
    reps: usize,
    photos: &LoaderPhotos,
) -> Result<()> {
    let crops_desc = cfg.crops.iter().map(|c| format!("{}x{}", c.count, c.size)).collect::<Vec<_>>().join("+");
    let mut t = Trainer::new(gpu.clone(), cfg.clone(), 100)?;
    t.init_random(0)?;
    let crops = random_crops(cfg, 1);
    let refs: Vec<&[f32]> = crops.iter().map(|c| c.as_slice()).collect();
    t.step(&refs)?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        t.step(&refs)?;
        times.push(s.elapsed().as_secs_f64());
    }
    let secs = median(times);
    let img_s = cfg.batch_size as f64 / secs;
    let gflop = 3.0 * cfg.forward_flops_per_image()? * cfg.batch_size as f64 / 1e9;
    let loader = photos.rate(cfg, 3)?;
    println!(
        "step {name:<14} {} {} x{} {} stem B{} crops {crops_desc}: {:.1} ms/step, {img_s:.1} img/s (~{:.1} GFLOP/s at 3x forward); data loader {loader:.0} samples/s on {} threads{}",
        cfg.precision,
        cfg.arch,
        cfg.width,
        cfg.stem,
        cfg.batch_size,
        secs * 1e3,
        gflop / secs,
        rayon::current_num_threads(),
        if loader < img_s { " (the GPU waits for the loader)" } else { " (the loader keeps up)" }
    );
    println!(
        "json: {{\"kind\":\"step\",\"config\":\"{name}\",\"precision\":\"{}\",\"ms_per_step\":{:.3},\"img_per_s\":{img_s:.3},\"loader_samples_per_s\":{loader:.1}}}",
        cfg.precision,
        secs * 1e3
    );
    println!("    plan: {}", t.plan.report);
    for line in t.plan.report.memory.to_string().lines() {
        println!("    {line}");
    }
    // The heaviest kernels of one step.
    let rows = kernel_profile(&t.plan, 2)?;
    let total: f64 = rows.iter().map(|r| r.1).sum();
    for (k, s, n) in rows.iter().take(8) {
        println!("    {k:<44} {n:>4} dispatches {:>9.2} ms  {:>5.1} %", s * 1e3, 100.0 * s / total);
    }
    Ok(())
}

/// Runs the whole benchmark on `gpu`, printing as it goes.
pub fn run(gpu: std::sync::Arc<Gpu>, opts: &BenchOptions) -> Result<()> {
    if opts.reps == 0 {
        return Err(Error::Invalid("--reps must be at least 1".into()));
    }
    println!("adapter: {}", gpu.describe());
    let timing = if gpu.has_timestamps() { "gpu timestamps" } else { "wall clock" };
    println!("kernel timing: {timing}");
    println!(
        "json: {{\"kind\":\"adapter\",\"name\":\"{}\",\"backend\":\"{:?}\",\"type\":\"{:?}\",\"driver\":\"{}\",\"timing\":\"{timing}\"}}",
        json_escape(&gpu.info.name),
        gpu.info.backend,
        gpu.info.device_type,
        json_escape(&format!("{} {}", gpu.info.driver, gpu.info.driver_info))
    );
    bench_matmul(&gpu, opts)?;
    bench_conv(&gpu, opts)?;
    let configs = if opts.configs.is_empty() {
        let mut all = step_configs();
        if opts.quick {
            all.truncate(1);
        }
        all
    } else {
        opts.configs.clone()
    };
    let photos = LoaderPhotos::new();
    // Each step in f32 and, where the adapter has shader-f16, with f16 activations beside it.
    for (name, cfg) in &configs {
        for act in activation_types(&gpu) {
            let precision = if act == DType::F16 { Precision::F16 } else { Precision::F32 };
            // As a run trains it (f16 with its dynamic loss scale).
            let mut run_cfg = TrainConfig { precision, ..cfg.clone() };
            crate::train::precision::resolve(&mut run_cfg, &gpu)?;
            bench_step(&gpu, name, &run_cfg, opts.reps, &photos)?;
        }
    }
    let tune = gpu.tuner.stats();
    println!(
        "tuning ({:?}): {} op shapes timed in {:.1} s, {} from the cache",
        gpu.tuner.mode, tune.tuned, tune.seconds, tune.cached
    );
    Ok(())
}
