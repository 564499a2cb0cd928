//! The SwAV objective on the GPU against PyTorch float64 fixtures (shared/fixtures/
//! swav_objective) and against the f64 CPU references; Sinkhorn stability; the end-to-end
//! step-1 gradients of the swav_model fixture.
#[allow(dead_code)]
mod common;

use std::path::PathBuf;

use common::*;
use swav_wgpu::graph::plan::Plan;
use swav_wgpu::graph::{Graph, TensorId};
use swav_wgpu::io::{load_safetensors_f64, F64Tensors};
use swav_wgpu::model::{multicrop_forward, Arch, BackboneConfig, HeadConfig, Stem};
use swav_wgpu::ops::sinkhorn::{self, SinkhornShape};
use swav_wgpu::swav::{self, cpu, SwavConfig};

fn fixtures() -> PathBuf {
    let dir = fixture_dir("");
    assert!(dir.exists(), "fixtures missing: expected {} (the shared/ folder beside the repo)", dir.display());
    dir
}

/// max |got - want| / max |want|: the fixtures' float32 tolerance measure.
fn rel_to_max(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max) / scale
}

fn f32v(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

struct Case {
    name: &'static str,
    t: F64Tensors,
    batch: usize,
    n_crops: usize,
    queue_length: usize,
}

fn case(name: &'static str, batch: usize, n_crops: usize, queue_length: usize) -> Case {
    let t = load_safetensors_f64(&fixtures().join(format!("swav_objective/{name}.safetensors"))).unwrap();
    Case { name, t, batch, n_crops, queue_length }
}

fn cases() -> Vec<Case> {
    vec![
        case("small", 8, 6, 0),
        case("small_2crops", 8, 2, 0),
        case("medium", 64, 8, 0),
        case("medium_queue", 64, 6, 256),
        case("large", 256, 6, 0),
    ]
}

const TOL: f64 = 1e-4; // index.json: "rtol 1e-4 of max|ref| is generous"; we print the actual

#[test]
fn objective_matches_pytorch_fixtures() {
    let Some(gpu) = gpu() else { return };
    for c in cases() {
        let (n, d) = (c.t["in_z"].0[0], c.t["in_z"].0[1]);
        let k = c.t["in_prototypes"].0[0];
        let cfg =
            SwavConfig { batch: c.batch, n_crops: c.n_crops, queue_length: c.queue_length, ..SwavConfig::default() };
        let mut g = Graph::new();
        let z = g.input_with_grad("z", &[n, d]).unwrap();
        let protos = g.parameter("prototypes.weight", &[k, d]).unwrap();
        g.renorm_rows(protos).unwrap();
        let emb = g.l2_normalize(z).unwrap();
        let scores = g.linear(emb, protos, None).unwrap();
        let obj = swav::objective(&mut g, &cfg, emb, scores, protos).unwrap();
        g.keep(emb, "emb");
        g.keep(scores, "scores");
        g.backward(obj.loss).unwrap();
        let (ge, gs) = (g.grad_of[&emb], g.grad_of[&scores]);
        g.keep(ge, "grad_emb");
        g.keep(gs, "grad_scores");
        let plan = Plan::compile(&g, gpu.clone()).unwrap();
        plan.write(z, &f32v(&c.t["in_z"].1)).unwrap();
        plan.write(protos, &f32v(&c.t["in_prototypes"].1)).unwrap();
        if c.queue_length > 0 {
            let q = &c.t["in_queue"].1;
            let per = q.len() / 2;
            plan.write(obj.queues[0], &f32v(&q[..per])).unwrap();
            plan.write(obj.queues[1], &f32v(&q[per..])).unwrap();
            plan.write(obj.queue_active, &[c.queue_length as f32]).unwrap();
        }
        plan.step().expect("plan step");
        let mut checks: Vec<(&str, Vec<f32>)> = vec![
            ("loss", plan.read_blocking(obj.loss).unwrap()),
            ("q_crop0", plan.read_blocking(obj.codes[0]).unwrap()),
            ("q_crop1", plan.read_blocking(obj.codes[1]).unwrap()),
            ("grad_z", plan.read_blocking(g.grads[&z]).unwrap()),
            ("grad_prototypes", plan.read_blocking(g.grads[&protos]).unwrap()),
        ];
        // The large case stores only some intermediates.
        for (key, t) in
            [("prototypes_normalized", protos), ("emb", emb), ("scores", scores), ("grad_emb", ge), ("grad_scores", gs)]
        {
            if c.t.contains_key(key) {
                checks.push((key, plan.read_blocking(t).unwrap()));
            }
        }
        if c.queue_length > 0 {
            let mut q = plan.read_blocking(obj.queues[0]).unwrap();
            q.extend(plan.read_blocking(obj.queues[1]).unwrap());
            checks.push(("queue_after", q));
        }
        for (key, got) in checks {
            let e = rel_to_max(&got, &c.t[key].1);
            println!("{:>13} {key:>21}: max|gpu - torch| / max|torch| = {e:.2e}", c.name);
            assert!(e <= TOL, "{} {key}: {e:.3e} > {TOL:.0e}", c.name);
        }
    }
}

#[test]
fn head_and_objective_match_pytorch_fixtures() {
    // Linear - BN1d (train, all N rows) - ReLU - Linear, then the objective.
    let Some(gpu) = gpu() else { return };
    for c in cases().into_iter().filter(|c| c.queue_length == 0 && c.name != "large") {
        let (n, f) = (c.t["head_in_h"].0[0], c.t["head_in_h"].0[1]);
        let (hidden, dim) = (c.t["head_in_W1"].0[0], c.t["head_in_W2"].0[0]);
        let k = c.t["in_prototypes"].0[0];
        let mut g = Graph::new();
        let h = g.input_with_grad("h", &[n, f]).unwrap();
        let out = swav_wgpu::model::head(&mut g, &HeadConfig { hidden, dim, prototypes: k }, h, true).unwrap();
        let cfg = SwavConfig { batch: c.batch, n_crops: c.n_crops, ..SwavConfig::default() };
        let obj = swav::objective(&mut g, &cfg, out.emb, out.scores, out.prototypes).unwrap();
        g.keep(out.z, "z");
        g.backward(obj.loss).unwrap();
        let plan = Plan::compile(&g, gpu.clone()).unwrap();
        plan.write(h, &f32v(&c.t["head_in_h"].1)).unwrap();
        for (name, key) in [
            ("projection_head.0.weight", "head_in_W1"),
            ("projection_head.0.bias", "head_in_b1"),
            ("projection_head.1.weight", "head_in_gamma"),
            ("projection_head.1.bias", "head_in_beta"),
            ("projection_head.3.weight", "head_in_W2"),
            ("projection_head.3.bias", "head_in_b2"),
            ("prototypes.weight", "in_prototypes"),
        ] {
            plan.write_named(name, &f32v(&c.t[key].1)).unwrap();
        }
        plan.write_named("projection_head.1.running_mean", &vec![0.0; hidden]).unwrap();
        plan.write_named("projection_head.1.running_var", &vec![1.0; hidden]).unwrap();
        plan.step().expect("plan step");
        let grad = |name: &str| plan.read_blocking(g.grads[&g.by_name(name).unwrap()]).unwrap();
        let checks: Vec<(&str, Vec<f32>)> = vec![
            ("head_z", plan.read_named("z").unwrap()),
            ("head_loss", plan.read_blocking(obj.loss).unwrap()),
            ("head_q_crop0", plan.read_blocking(obj.codes[0]).unwrap()),
            ("head_q_crop1", plan.read_blocking(obj.codes[1]).unwrap()),
            ("head_grad_h", plan.read_blocking(g.grads[&h]).unwrap()),
            ("head_grad_W1", grad("projection_head.0.weight")),
            ("head_grad_gamma", grad("projection_head.1.weight")),
            ("head_grad_beta", grad("projection_head.1.bias")),
            ("head_grad_W2", grad("projection_head.3.weight")),
            ("head_grad_b2", grad("projection_head.3.bias")),
            ("head_grad_prototypes", grad("prototypes.weight")),
        ];
        for (key, got) in checks {
            let e = rel_to_max(&got, &c.t[key].1);
            println!("{:>13} {key:>21}: {e:.2e}", c.name);
            assert!(e <= TOL, "{} {key}: {e:.3e}", c.name);
        }
        // True value 0 (BN follows): only rounding noise, compared absolutely.
        let b1 = grad("projection_head.0.bias");
        let w1_scale = c.t["head_grad_W1"].1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(b1.iter().all(|v| (*v as f64).abs() <= 1e-4 * w1_scale), "head_grad_b1 should be ~0: {b1:?}");
    }
}

#[test]
fn sinkhorn_kernels_match_cpu_reference_with_and_without_queue() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(80);
    for (queue_rows, active, batch, k) in [
        (0, 0, 8, 16),
        (0, 0, 37, 101),
        (64, 64, 16, 30),
        (64, 0, 16, 30),
        (0, 0, 1, 5),
        (128, 128, 19, 72),
        (128, 0, 19, 72),
    ] {
        let rows = queue_rows + batch;
        let x = rng.vec_f32(rows * k);
        let s = SinkhornShape { queue_rows, batch, k, epsilon: 0.05, iterations: 3, world: 1 };
        let want = sinkhorn::cpu::sinkhorn(&x, queue_rows, active, batch, k, 0.05, 3);
        let tx = upload(&gpu, "x", &x);
        let ta = upload(&gpu, "active", &[active as f64]);
        let codes = nan_tensor(&gpu, "codes", batch * k);
        run(&gpu, &sinkhorn::sinkhorn(&gpu, &tx, &ta, &codes, s).unwrap());
        let got = read(&gpu, &codes);
        assert_close(&format!("sinkhorn q{queue_rows} a{active} b{batch} k{k}"), &got, &want, GPU_TOL);
    }
}

#[test]
fn sinkhorn_is_finite_where_exp_overflows_f32() {
    // Scores of +-1 with eps 0.01: exp(100) overflows f32 without the shift.
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(81);
    let (batch, k) = (64, 100);
    let x: Vec<f64> = (0..batch * k).map(|_| if rng.signed() > 0.0 { 1.0 } else { -1.0 }).collect();
    let s = SinkhornShape { queue_rows: 0, batch, k, epsilon: 0.01, iterations: 3, world: 1 };
    let tx = upload(&gpu, "x", &x);
    let ta = upload(&gpu, "active", &[0.0]);
    let codes = nan_tensor(&gpu, "codes", batch * k);
    run(&gpu, &sinkhorn::sinkhorn(&gpu, &tx, &ta, &codes, s).unwrap());
    let q = read(&gpu, &codes);
    assert!(q.iter().all(|v| v.is_finite() && *v >= 0.0), "codes must be finite and non-negative");
    for (b, row) in q.chunks(k).enumerate() {
        let sum: f64 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "sample {b}: codes sum to {sum}");
    }
    // And they agree with the f64 reference, which needs no shift.
    assert_close("eps 0.01", &q, &sinkhorn::cpu::sinkhorn(&x, 0, 0, batch, k, 0.01, 3), 1e-3);
}

#[test]
fn targets_kernel_matches_cpu_and_the_pairwise_loss() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(82);
    for (batch, n_crops, k, assign) in
        [(4, 6, 7, vec![0, 1]), (3, 2, 5, vec![0, 1]), (2, 4, 3, vec![1]), (5, 5, 9, vec![0, 2, 4])]
    {
        let codes = rng.vec_f32(assign.len() * batch * k).iter().map(|v| v.abs()).collect::<Vec<_>>();
        let want = sinkhorn::cpu::targets(&codes, batch, n_crops, k, &assign);
        let tc = upload(&gpu, "codes", &codes);
        let t = nan_tensor(&gpu, "t", n_crops * batch * k);
        run(&gpu, &[sinkhorn::targets(&gpu, &tc, &t, batch, n_crops, k, &assign).unwrap()]);
        assert_close("targets", &read(&gpu, &t), &want, GPU_TOL);
        // CE against the summed targets equals the official pair-by-pair loss.
        let scores = rng.vec(n_crops * batch * k);
        let per_row = swav_wgpu::ops::loss::cpu::cross_entropy_forward(&scores, &want, k, 10.0);
        let fused = per_row.iter().sum::<f64>() / (batch * (n_crops - 1) * assign.len()) as f64;
        let split: Vec<Vec<f64>> = codes.chunks(batch * k).map(|c| c.to_vec()).collect();
        let pairwise = cpu::swapped_loss(&scores, &split, batch, n_crops, k, &assign, 0.1);
        assert!((fused - pairwise).abs() <= 1e-12 * pairwise.abs(), "{fused} vs {pairwise}");
    }
}

/// The swav_model fixture network and its SwAV loss (crops 2x32 + 2x16, batch 4).
pub fn fixture_training_graph() -> (Graph, swav_wgpu::model::HeadOutputs, swav::SwavObjective) {
    let mut g = Graph::new();
    let crops: Vec<TensorId> = (0..4)
        .map(|i| {
            g.input(&format!("crop{i}"), &[4, 3, if i < 2 { 32 } else { 16 }, if i < 2 { 32 } else { 16 }]).unwrap()
        })
        .collect();
    let bb =
        BackboneConfig { arch: Arch::ResNet18, width: 0.125, stem: Stem::Cifar, storage: swav_wgpu::gpu::DType::F32 };
    let head = HeadConfig { hidden: 64, dim: 16, prototypes: 20 };
    let out = multicrop_forward(&mut g, &bb, &head, &crops, true).unwrap();
    let cfg = SwavConfig { batch: 4, n_crops: 4, ..SwavConfig::default() };
    let obj = swav::objective(&mut g, &cfg, out.emb, out.scores, out.prototypes).unwrap();
    g.backward(obj.loss).unwrap();
    (g, out, obj)
}

#[test]
fn swav_model_fixture_step1_loss_codes_and_every_gradient_match_pytorch() {
    let Some(gpu) = gpu() else { return };
    let dir = fixtures().join("swav_model");
    let initial = swav_wgpu::io::load_safetensors(&dir.join("initial.safetensors")).unwrap();
    let step1 = load_safetensors_f64(&dir.join("step1.safetensors")).unwrap();
    let (g, _, obj) = fixture_training_graph();
    let plan = Plan::compile(&g, gpu).unwrap();
    plan.load_state(&initial).unwrap();
    for i in 0..4 {
        plan.write_named(&format!("crop{i}"), &initial[&format!("crop{i}")].data).unwrap();
    }
    plan.step().expect("plan step");
    let loss = plan.read_blocking(obj.loss).unwrap()[0] as f64;
    let want = step1["loss"].1[0];
    println!("loss {loss} vs {want}");
    assert!((loss - want).abs() <= 8e-5, "loss {loss} vs torch {want}");
    for (i, key) in ["q_crop0", "q_crop1"].iter().enumerate() {
        let e = rel_to_max(&plan.read_blocking(obj.codes[i]).unwrap(), &step1[*key].1);
        assert!(e <= 3e-4, "{key}: {e:.3e}");
    }
    let mut worst = (0.0, String::new());
    let mut count = 0;
    for (param, grad) in &g.grads {
        let name = &g.info(*param).name;
        let got = plan.read_blocking(*grad).unwrap();
        let want = &step1[&format!("grad.{name}")].1;
        count += 1;
        if name == "projection_head.0.bias" {
            // True gradient 0 (BN follows): compare absolutely with the head weight's scale.
            let scale = step1["grad.projection_head.0.weight"].1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(got.iter().all(|v| (*v as f64).abs() <= 1e-4 * scale), "{name}: {got:?}");
            continue;
        }
        let e = rel_to_max(&got, want);
        if e > worst.0 {
            worst = (e, name.clone());
        }
        assert!(e <= 3e-4, "grad.{name}: {e:.3e} > 3e-4 (index.json's float32 tolerance)");
    }
    println!("{count} parameter gradients; worst {:.2e} ({})", worst.0, worst.1);
    // index.json lists 67 parameters (181,400 values).
    assert_eq!(count, 67, "every parameter of the fixture has a gradient");
    let numel: usize = g.grads.keys().map(|p| g.info(*p).len()).sum();
    assert_eq!(numel, 181_400);
}
