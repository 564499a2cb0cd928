//! One full SwAV training step (forward, Sinkhorn, loss, backward, LARS) on the current
//! adapter: resnet18 x 0.25, CIFAR stem, batch 64, crops 2x32 + 4x16, K 100, D 128, hidden 512
//! (40.5 GFLOP per step by PyTorch's count). Median ms/step and img/s after warm-up.
//! SWAV_BENCH_DEFAULTS=1: the `swav-wgpu train` defaults instead; SWAV_BENCH_CONFIG=FILE.toml:
//! those defaults with the file's keys over them.
use std::time::Instant;

use swav_wgpu::gpu::Gpu;
use swav_wgpu::train::Trainer;

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
        // `swav-wgpu bench`'s first step configuration.
        swav_wgpu::bench::step_configs().swap_remove(0).1
    };
    let mut t = Trainer::new(gpu.clone(), cfg.clone(), 100)?;
    t.init_random(0)?;
    println!("plan: {}", t.plan.report);
    let crops = swav_wgpu::bench::random_crops(&cfg, 1);
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
        let depth = if std::env::var_os("SWAV_BENCH_PROFILE_FULL").is_some() { 3 } else { 2 };
        for (k, secs, n) in swav_wgpu::bench::kernel_profile(&t.plan, depth)? {
            println!("  {k:<40} {n:>4} dispatches {:>9.1} ms", secs * 1e3);
        }
    }
    Ok(())
}
