//! Data-parallel training without MPI: ranks as threads in one process (`dist::Threads`) on
//! one adapter. The distributed Sinkhorn and synchronised batch-norm against one process on
//! the concatenated inputs, kernel by kernel (every shape class the kernels pick between:
//! vec4 and scalar, ragged sizes, active and inactive queues, 2 and 3 ranks), then whole
//! training steps (`check_parallel`, which `swav-wgpu check-parallel` runs under mpirun; see
//! tests/mpi.rs).
#[allow(dead_code)]
mod common;

use std::sync::Arc;

use common::*;
use swav_wgpu::dist::{Collective, Threads};
use swav_wgpu::gpu::Gpu;
use swav_wgpu::ops::batchnorm::{self, BatchNormBackwardTensors, BatchNormShape, BatchNormTensors};
use swav_wgpu::ops::sinkhorn::{self, SinkhornShape};
use swav_wgpu::optim::OptimizerKind;
use swav_wgpu::train::parallel::check_parallel;
use swav_wgpu::train::TrainConfig;

/// Runs `f(rank, that rank's collective)` on `world` threads; results in rank order.
fn ranks<T: Send + 'static>(
    world: usize,
    f: impl Fn(usize, Arc<dyn Collective>) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let handles: Vec<_> = Threads::world(world)
        .into_iter()
        .enumerate()
        .map(|(r, c)| {
            let f = f.clone();
            std::thread::spawn(move || f(r, Arc::new(c)))
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("rank thread")).collect()
}

/// Rows [r * n, (r + 1) * n) of a row-major [rows, cols] matrix.
fn rows(x: &[f64], r: usize, n: usize, cols: usize) -> Vec<f64> {
    x[r * n * cols..(r + 1) * n * cols].to_vec()
}

#[test]
fn distributed_sinkhorn_equals_one_sinkhorn_over_every_ranks_scores() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(140);
    // (ranks, queue rows per rank, active, batch per rank, K): vec4 and scalar K, ragged
    // batches, a queue in use and one not yet.
    for (world, queue_rows, active, batch, k) in [
        (2, 0, 0, 8, 16),
        (2, 0, 0, 37, 101),
        (3, 0, 0, 5, 30),
        (2, 64, 64, 16, 30),
        (2, 64, 0, 16, 30),
        (3, 16, 16, 3, 7),
    ] {
        let queues = rng.vec_f32(world * queue_rows * k);
        let batches = rng.vec_f32(world * batch * k);
        // One process: every rank's queue rows first (all or none active), then the batches.
        let all = [queues.clone(), batches.clone()].concat();
        let want = sinkhorn::cpu::sinkhorn(&all, world * queue_rows, world * active, world * batch, k, 0.05, 3);
        let g = gpu.clone();
        let got = ranks(world, move |r, c| {
            let x = [rows(&queues, r, queue_rows, k), rows(&batches, r, batch, k)].concat();
            let s = SinkhornShape { queue_rows, batch, k, epsilon: 0.05, iterations: 3, world };
            let (tx, ta) = (upload(&g, "x", &x), upload(&g, "active", &[active as f64]));
            let codes = nan_tensor(&g, "codes", batch * k);
            let steps = sinkhorn::sinkhorn_steps(&g, &tx, &ta, &codes, s).expect("steps");
            g.run_steps(&steps, c.as_ref()).expect("run");
            read(&g, &codes)
        });
        let what = format!("{world} ranks q{queue_rows} a{active} b{batch} k{k}");
        assert_close(&what, &got.concat(), &want, GPU_TOL);
    }
}

/// Sync batch-norm's outputs on one rank: y, the statistics, the running stats, dX, dgamma,
/// dbeta.
fn sync_bn_rank(g: &Gpu, c: &dyn Collective, s: BatchNormShape, inputs: [&[f64]; 6]) -> Vec<Vec<f64>> {
    let [x, dy, gamma, beta, run_mean, run_var] = inputs;
    let (x, gamma, beta) = (upload(g, "x", x), upload(g, "gamma", gamma), upload(g, "beta", beta));
    let (running_mean, running_var) = (upload(g, "running mean", run_mean), upload(g, "running var", run_var));
    let y = nan_tensor(g, "y", s.len());
    let t = BatchNormTensors {
        x: &x,
        gamma: &gamma,
        beta: &beta,
        running_mean: &running_mean,
        running_var: &running_var,
        y: &y,
    };
    let (mean, var) = (nan_tensor(g, "mean", s.channels), nan_tensor(g, "var", s.channels));
    let forward = batchnorm::forward_train_steps(g, &t, (&mean, &var), s, true).expect("forward");
    g.run_steps(&forward, c).expect("forward run");
    let b = BatchNormBackwardTensors {
        x: &x,
        dy: &upload(g, "dy", dy),
        mean: &mean,
        var: &var,
        gamma: &gamma,
        dgamma: &nan_tensor(g, "dgamma", s.channels),
        dbeta: &nan_tensor(g, "dbeta", s.channels),
        dx: &nan_tensor(g, "dx", s.len()),
        relu_mask: None,
    };
    let backward = batchnorm::backward_steps(g, &b, s, true).expect("backward");
    g.run_steps(&backward, c).expect("backward run");
    [&y, &mean, &var, &running_mean, &running_var, b.dx, b.dgamma, b.dbeta].iter().map(|t| read(g, t)).collect()
}

#[test]
fn synchronised_batch_norm_equals_one_batch_norm_over_every_ranks_batch() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(141);
    // (ranks, batch per rank, channels, spatial): vec4 and scalar spatial, BatchNorm1d.
    for (world, batch, channels, spatial) in [(2, 4, 3, 16), (2, 3, 7, 9), (3, 2, 5, 17 * 5), (2, 8, 33, 1)] {
        let s = BatchNormShape { world, ..BatchNormShape::new(batch, channels, spatial) };
        let whole = BatchNormShape::new(world * batch, channels, spatial);
        let x: Vec<f64> = rng.vec_f32(whole.len()).iter().map(|v| v * 3.0 + 0.7).collect();
        let dy = rng.vec_f32(whole.len());
        let (gamma, beta) = (rng.vec_f32(channels), rng.vec_f32(channels));
        let (run_mean, run_var) =
            (rng.vec_f32(channels), rng.vec_f32(channels).iter().map(|v| v.abs() + 0.5).collect::<Vec<f64>>());
        let (y, mean, var) = batchnorm::cpu::forward_train(&x, &gamma, &beta, &whole);
        let (rm, rv) = batchnorm::cpu::update_running(&run_mean, &run_var, &mean, &var, &whole);
        let (dx, dgamma, dbeta) = batchnorm::cpu::backward(&x, &dy, &mean, &var, &gamma, &whole, true);
        let per = s.len();
        let g = gpu.clone();
        let (xs, dys, gm, bt, m0, v0) = (x.clone(), dy.clone(), gamma.clone(), beta.clone(), run_mean.clone(), run_var);
        let got = ranks(world, move |r, c| {
            let inputs = [&xs[r * per..(r + 1) * per], &dys[r * per..(r + 1) * per], &gm, &bt, &m0, &v0];
            sync_bn_rank(&g, c.as_ref(), s, inputs)
        });
        let what = |name: &str| format!("{name}: {world} ranks x {batch}, {channels} channels, spatial {spatial}");
        let gather = |i: usize| got.iter().flat_map(|r| r[i].clone()).collect::<Vec<f64>>();
        assert_close(&what("y"), &gather(0), &y, GPU_TOL);
        assert_close(&what("dX"), &gather(5), &dx, GPU_TOL);
        for r in &got {
            // Every rank has the global statistics and moves its running stats alike.
            assert_close(&what("mean"), &r[1], &mean, GPU_TOL);
            assert_close(&what("var"), &r[2], &var, GPU_TOL);
            assert_close(&what("running mean"), &r[3], &rm, GPU_TOL);
            assert_close(&what("running var"), &r[4], &rv, GPU_TOL);
        }
        // dgamma and dbeta stay per rank (the gradient all-reduce sums them).
        let sum = |i: usize| (0..channels).map(|ch| got.iter().map(|r| r[i][ch]).sum()).collect::<Vec<f64>>();
        assert_close(&what("dgamma summed over ranks"), &sum(6), &dgamma, GPU_TOL);
        assert_close(&what("dbeta summed over ranks"), &sum(7), &dbeta, GPU_TOL);
    }
}

fn tiny(sync_bn: bool) -> TrainConfig {
    let mut cfg = swav_wgpu::train::config::small_data_defaults();
    cfg.width = 0.125;
    cfg.batch_size = 4;
    cfg.sync_bn = sync_bn;
    // The official optimizer; the check's lr schedule warms up from 0 over its steps.
    cfg.optimizer = OptimizerKind::Lars;
    cfg.lr = 0.3;
    cfg
}

fn check(world: usize, cfg: TrainConfig) -> swav_wgpu::train::parallel::ParallelReport {
    let Some(gpu) = gpu() else { panic!("no adapter") };
    let reports = ranks(world, move |_, c| check_parallel(gpu.clone(), &cfg, 3, c));
    let mut reports = reports.into_iter();
    let first = reports.next().expect("rank 0").expect("check").expect("rank 0 reports");
    for other in reports {
        assert!(other.expect("check").is_none(), "only rank 0 reports");
    }
    println!("{first}");
    first
}

#[test]
fn two_ranks_with_sync_bn_train_as_one_process_on_the_global_batch() {
    if gpu().is_none() {
        return;
    }
    let r = check(2, tiny(true));
    assert!(r.passes(1e-5), "{r}");
    // The figures that float32 allows at 1e-5 are held there; the rest track one process
    // against itself.
    let (job, floor) = (r.job.expect("compared"), r.floor.expect("control"));
    assert!(r.codes <= 1e-5 && job.loss <= 1e-5, "{r}");
    assert!(job.grads <= 2.0 * floor.grads.max(5e-6), "{r}");
    assert_eq!(r.excluded, vec!["projection_head.0.bias".to_string()], "{r}");
}

/// With dynamic loss scaling each rank seeds its backward pass with S, the gradients are
/// averaged scaled, and every rank unscales and checks the same averaged gradients: the job
/// still trains as one process does.
#[test]
fn two_ranks_with_loss_scaling_train_as_one_process_on_the_global_batch() {
    if gpu().is_none() {
        return;
    }
    let cfg = TrainConfig { loss_scale: swav_wgpu::optim::LossScale::Dynamic, ..tiny(true) };
    let r = check(2, cfg);
    assert!(r.passes(1e-5), "{r}");
    let (job, floor) = (r.job.expect("compared"), r.floor.expect("control"));
    assert!(r.codes <= 1e-5 && job.loss <= 1e-5 && job.grads <= 2.0 * floor.grads.max(5e-6), "{r}");
}

#[test]
fn three_ranks_without_sync_bn_give_the_codes_of_one_sinkhorn() {
    if gpu().is_none() {
        return;
    }
    let r = check(3, tiny(false));
    assert!(r.job.is_none() && r.passes(1e-5), "{r}");
}

#[test]
fn a_plan_runs_only_in_the_world_its_graph_was_built_for() {
    let Some(gpu) = gpu() else { return };
    let mut g = swav_wgpu::graph::Graph::new();
    let x = g.input("x", &[4]).expect("input");
    // One process has nothing to exchange.
    assert!(g.all_reduce(&[x], 1.0).is_err());
    let mut two = swav_wgpu::graph::Graph::new();
    two.world = 2;
    let x = two.input("x", &[4]).expect("input");
    two.all_reduce(&[x], 0.5).expect("all-reduce");
    let e = swav_wgpu::graph::plan::Plan::compile(&two, gpu.clone()).err().expect("refused");
    assert!(e.to_string().contains("world of 2 ranks"), "{e}");
    // In its world, the exchange averages.
    let got = ranks(2, move |r, c| {
        let plan = swav_wgpu::graph::plan::Plan::compile_in(&two, gpu.clone(), true, c).expect("plan");
        plan.write(x, &[r as f32, 1.0, 2.0, 10.0 * r as f32]).expect("write");
        plan.step().expect("step");
        assert_eq!(plan.comm_stats().bytes, 16);
        plan.read_blocking(x).expect("read")
    });
    assert_eq!(got, vec![vec![0.5, 1.0, 2.0, 5.0]; 2]);
}

#[test]
fn a_check_that_compared_nothing_fails() {
    // A report of nothing compared (no steps, or one process and no job) never passes.
    assert!(!swav_wgpu::train::parallel::ParallelReport::default().passes(1e-5));
    let Some(gpu) = gpu() else { return };
    for (world, steps) in [(2, 0), (1, 3)] {
        let g = gpu.clone();
        let results = ranks(world, move |_, c| check_parallel(g.clone(), &tiny(false), steps, c).map(|_| ()));
        for r in results {
            let e = r.expect_err("a check of nothing fails").to_string();
            assert!(e.contains("compared nothing") && e.contains("mpirun"), "{e}");
        }
    }
    // The command line, started as one process (not under mpirun): an error, not "ok".
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swav-wgpu"))
        .args(["check-parallel", "--width", "0.125"])
        .output()
        .expect("the binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("compared nothing") && !err.contains("panicked"), "{err}");
}
