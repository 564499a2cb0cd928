//! SwAV objective throughput on the current adapter: Sinkhorn-Knopp on 4096 x 3000
//! (3 iterations) and the whole objective (scores, codes, loss, backward) at B 256, K 3000,
//! D 128, crops 2 + 4. Median of timed runs after warm-up.
use std::time::Instant;

use swav_wgpu::gpu::{Dispatch, Gpu};
use swav_wgpu::graph::plan::Plan;
use swav_wgpu::graph::Graph;
use swav_wgpu::ops::sinkhorn::{self, SinkhornShape};
use swav_wgpu::swav::{self, SwavConfig};

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn run(gpu: &Gpu, d: &[Dispatch]) {
    gpu.run(d);
    gpu.wait_idle();
}

fn main() -> swav_wgpu::Result<()> {
    let gpu = Gpu::from_env_blocking()?;
    let reps: usize = std::env::var("SWAV_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    println!("adapter: {}", gpu.describe());

    let (rows, k) = (4096, 3000);
    let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
    let tx = gpu.tensor_from("scores", &[rows, k], &x)?;
    let active = gpu.tensor_from("active", &[1], &[0.0])?;
    let codes = gpu.tensor("codes", &[rows, k])?;
    let s = SinkhornShape { queue_rows: 0, batch: rows, k, epsilon: 0.05, iterations: 3, world: 1 };
    let d = sinkhorn::sinkhorn(&gpu, &tx, &active, &codes, s)?;
    let ms = median_ms(reps, || run(&gpu, &d));
    println!("sinkhorn {rows}x{k} 3 iterations: {ms:.1} ms median ({} dispatches)", d.len());
    if std::env::var_os("SWAV_BENCH_PROFILE").is_some() {
        for one in &d {
            let ms = median_ms(3, || run(&gpu, std::slice::from_ref(one)));
            println!("  {:<28} {:?}: {ms:.1} ms", one.label, one.workgroups());
        }
    }

    let (b, n_crops, kk, dim) = (256, 6, 3000, 128);
    let mut g = Graph::new();
    let z = g.input_with_grad("z", &[b * n_crops, dim])?;
    let protos = g.parameter("prototypes.weight", &[kk, dim])?;
    g.renorm_rows(protos)?;
    let emb = g.l2_normalize(z)?;
    let scores = g.linear(emb, protos, None)?;
    let cfg = SwavConfig { batch: b, n_crops, ..SwavConfig::default() };
    let obj = swav::objective(&mut g, &cfg, emb, scores, protos)?;
    g.backward(obj.loss)?;
    let plan = Plan::compile(&g, gpu.clone())?;
    let zd: Vec<f32> = (0..b * n_crops * dim).map(|i| ((i * 104729) % 1999) as f32 / 999.0 - 1.0).collect();
    let pd: Vec<f32> = (0..kk * dim).map(|i| ((i * 7907) % 1997) as f32 / 998.0 - 1.0).collect();
    plan.write(z, &zd)?;
    plan.write(protos, &pd)?;
    let ms = median_ms(reps, || {
        plan.step().expect("plan step");
        let _ = plan.read_blocking(obj.loss);
    });
    println!(
        "swav objective B{b} K{kk} D{dim} crops 2+4 forward+backward: {ms:.1} ms median ({} dispatches)",
        plan.report.dispatches
    );
    Ok(())
}
