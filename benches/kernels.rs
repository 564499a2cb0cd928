//! Kernel throughput on the current adapter: matmul and conv2d (forward, backward-data,
//! backward-weight) in GFLOP/s, median of timed runs after warm-up. One line per case.
//! `cargo bench --bench kernels` (SWAV_BENCH_ALL_VARIANTS=1 also times the non-default
//! variants; SWAV_BENCH_REPS sets the repetitions, default 5).
use std::time::Instant;

use swav_wgpu::gpu::{Dispatch, Gpu, Tensor};
use swav_wgpu::ops::conv::{self, Conv2dShape, ConvKernel, ConvPass};
use swav_wgpu::ops::matmul::{self, GemmVariant, MatmulShape};

fn median_seconds(gpu: &Gpu, dispatches: &[Dispatch], reps: usize) -> f64 {
    gpu.run(dispatches);
    gpu.wait_idle();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            gpu.run(dispatches);
            gpu.wait_idle();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn filled(gpu: &Gpu, name: &str, n: usize) -> Tensor {
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    gpu.tensor_from(name, &[n], &data).expect("bench tensor")
}

fn report(op: &str, shape: &str, kernel: &str, flops: f64, secs: f64) {
    println!("{op:<24} {shape:<32} {kernel:<22} {:8.2} GFLOP/s  ({:.1} ms median)", flops / secs / 1e9, secs * 1e3);
}

fn main() -> swav_wgpu::Result<()> {
    let gpu = Gpu::from_env_blocking()?;
    let reps: usize = std::env::var("SWAV_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    println!("adapter: {}", gpu.describe());
    let variants: Vec<GemmVariant> = if let Some(t) = std::env::var("SWAV_BENCH_TILE").ok().and_then(|t| {
        let (a, b) = t.split_once('x')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }) {
        vec![GemmVariant::RegisterTiled { tm: t.0, tn: t.1 }]
    } else if std::env::var_os("SWAV_BENCH_ALL_VARIANTS").is_some() {
        GemmVariant::all(gpu.subgroup_size)
    } else {
        vec![]
    };
    let matmul_variants = if variants.is_empty() { vec![GemmVariant::for_matmul(&gpu)] } else { variants.clone() };
    let conv_variants = if variants.is_empty() { vec![GemmVariant::for_conv(&gpu, 64, usize::MAX)] } else { variants };

    for &variant in &matmul_variants {
        let (m, n, k) = (1024, 1024, 1024);
        let (a, b, c) = (filled(&gpu, "a", m * k), filled(&gpu, "b", k * n), filled(&gpu, "c", m * n));
        let s = MatmulShape { m, n, k, trans_a: false, trans_b: false };
        let d = matmul::matmul(&gpu, &a, &b, None, &c, s, variant)?;
        let secs = median_seconds(&gpu, &d, reps);
        report("matmul", &format!("{m}x{n}x{k}"), &variant.name(), 2.0 * (m * n * k) as f64, secs);
    }

    let s = Conv2dShape::square(64, 64, 32, 64, 3, 1, 1);
    let shape = "N64 C64 K64 32x32 3x3 s1 p1";
    let (x, w, y) =
        (filled(&gpu, "x", s.input_len()), filled(&gpu, "w", s.weight_len()), filled(&gpu, "y", s.output_len()));
    let (dx, dw) = (filled(&gpu, "dx", s.input_len()), filled(&gpu, "dw", s.weight_len()));
    for &variant in &conv_variants {
        // With subgroups, forward and stride-1 backward-input run the direct row kernel.
        let kernel = |pass| ConvKernel::with_variant(&gpu, &s, pass, variant);
        let k = kernel(ConvPass::Forward);
        let d = conv::forward(&gpu, &x, &w, &y, s, k)?;
        report("conv2d_forward", shape, &k.name(), s.flops(), median_seconds(&gpu, &d, reps));
        let k = kernel(ConvPass::BackwardInput);
        let d = conv::backward_input(&gpu, &y, &w, &dx, s, k)?;
        report("conv2d_backward_input", shape, &k.name(), s.flops(), median_seconds(&gpu, &d, reps));
        let k = kernel(ConvPass::BackwardWeight);
        let splits = conv::weight_grad_splits(s, k, gpu.class);
        let d = conv::backward_weight(&gpu, &x, &y, &dw, s, k, splits)?;
        report(
            "conv2d_backward_weight",
            &format!("{shape} split{splits}"),
            &k.name(),
            s.flops(),
            median_seconds(&gpu, &d, reps),
        );
    }
    Ok(())
}
