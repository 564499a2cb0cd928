//! One full SwAV training step (forward, Sinkhorn, loss, backward, LARS) on the current
//! adapter: resnet18 x 0.25, CIFAR stem, batch 64, crops 2x32 + 4x16, K 100, D 128, hidden 512
//! (40.5 GFLOP per step by PyTorch's count). Median ms/step and img/s after warm-up.
//! SWAV_BENCH_DEFAULTS=1: the `swav-wgpu train` defaults instead; SWAV_BENCH_CONFIG=FILE.toml:
//! those defaults with the file's keys over them.
use std::time::Instant;

use swav_wgpu::gpu::Gpu;
use swav_wgpu::train::{TrainConfig, Trainer};

fn main() -> swav_wgpu::Result<()> {
    let gpu = Gpu::from_env_blocking()?;
    let reps: usize = std::env::var("SWAV_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    println!("adapter: {}", gpu.describe());
    let cfg = if let Some(path) = std::env::var_os("SWAV_BENCH_CONFIG") {
        // A TOML file of config keys over the `swav-wgpu train` defaults.
        let text = std::fs::read_to_string(&path).map_err(|e| swav_wgpu::Error::Invalid(format!("{path:?}: {e}")))?;
        swav_wgpu::train::config::small_data_defaults().with_toml(&text)?
    } else if std::env::var_os("SWAV_BENCH_DEFAULTS").is_some() {
        // The `swav-wgpu train` defaults instead of the benchmark configuration.
        swav_wgpu::train::config::small_data_defaults()
    } else {
        TrainConfig {
            arch: "resnet18".into(),
            width: 0.25,
            stem: "cifar".into(),
            batch_size: 64,
            prototypes: 100,
            feat_dim: 128,
            hidden_mlp: 512,
            ..TrainConfig::default()
        }
    };
    let mut t = Trainer::new(gpu.clone(), cfg.clone(), 100)?;
    t.init_random(0)?;
    println!("plan: {}", t.plan.report);
    let mut rng = swav_wgpu::rng::Rng::new(1);
    let crops: Vec<Vec<f32>> = cfg
        .crops
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.size, c.count))
        .map(|s| (0..cfg.batch_size * 3 * s * s).map(|_| rng.normal() as f32).collect())
        .collect();
    let refs: Vec<&[f32]> = crops.iter().map(|c| c.as_slice()).collect();
    t.step(&refs)?;
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            t.step(&refs).expect("step");
            s.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    let med = times[times.len() / 2];
    println!(
        "train step {} x{} {} bs{} crops {}: {:.0} ms/step, {:.1} img/s",
        cfg.arch,
        cfg.width,
        cfg.stem,
        cfg.batch_size,
        cfg.crops.iter().map(|c| format!("{}x{}", c.count, c.size)).collect::<Vec<_>>().join("+"),
        med * 1e3,
        cfg.batch_size as f64 / med
    );
    if std::env::var_os("SWAV_BENCH_PROFILE").is_some() {
        let mut by_kernel: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
        for (label, secs) in t.plan.profile_dispatches() {
            let depth = if std::env::var_os("SWAV_BENCH_PROFILE_FULL").is_some() { 3 } else { 2 };
            let key = label.split('/').take(depth).collect::<Vec<_>>().join("/");
            let e = by_kernel.entry(key).or_default();
            e.0 += secs;
            e.1 += 1;
        }
        let mut rows: Vec<_> = by_kernel.into_iter().collect();
        rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        for (k, (secs, n)) in rows {
            println!("  {k:<40} {n:>4} dispatches {:>9.1} ms", secs * 1e3);
        }
    }
    Ok(())
}
