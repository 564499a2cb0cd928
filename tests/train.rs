//! The full training step: three LARS steps of the swav_model fixture against PyTorch, the
//! optimizer kernel against its CPU reference, exact resume, and the backbone export.
#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use swav_wgpu::gpu::tune::{Timer, TuneMode, TuneStats};
use swav_wgpu::gpu::{Dispatch, Gpu, GpuOptions};
use swav_wgpu::graph::Kind;
use swav_wgpu::io::{load_safetensors, load_safetensors_f64};
use swav_wgpu::ops::optim;
use swav_wgpu::optim::{lr_schedule, AdamHyper, LossScale, OptimizerKind, SgdHyper};
use swav_wgpu::train::{CropConfig, TrainConfig, Trainer};

fn fixture_dir() -> PathBuf {
    let dir = common::fixture_dir("swav_model");
    assert!(dir.exists(), "fixtures missing: expected {} (the shared/ folder beside the repo)", dir.display());
    dir
}

/// The fixture's run: ResNet-18 layout x 0.125, CIFAR stem, head 64-64-16, 20 prototypes,
/// batch 4, crops 2x32 + 2x16, LARC(SGD) trust 0.001, wd 1e-6, momentum 0.9, schedule
/// (1 iteration per epoch) warm-up 1 epoch from 0.02 to 0.1, cosine to 1e-4 over 5 epochs,
/// prototypes frozen for 1 iteration.
fn fixture_config() -> TrainConfig {
    TrainConfig {
        arch: swav_wgpu::model::Arch::ResNet18,
        width: 0.125,
        stem: swav_wgpu::model::Stem::Cifar,
        hidden_mlp: 64,
        feat_dim: 16,
        prototypes: 20,
        batch_size: 4,
        crops: vec![
            CropConfig { count: 2, size: 32, min_scale: 0.14, max_scale: 1.0 },
            CropConfig { count: 2, size: 16, min_scale: 0.05, max_scale: 0.14 },
        ],
        epochs: 5,
        lr: 0.1,
        final_lr: 0.0001,
        start_warmup: 0.02,
        warmup_epochs: 1.0,
        freeze_prototypes_niters: 1,
        queue_length: 0,
        ..TrainConfig::default()
    }
}

fn rel_to_max(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    got.iter().zip(want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn lr_schedule_matches_the_fixture() {
    let lr = lr_schedule(0.1, 0.0001, 0.02, 1, 5);
    let want = [0.02, 0.1, 0.08536998372026805];
    for (a, b) in lr.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{lr:?}");
    }
}

#[test]
fn three_lars_steps_match_pytorch() {
    let Some(gpu) = gpu() else { return };
    let dir = fixture_dir();
    let initial = load_safetensors(&dir.join("initial.safetensors")).unwrap();
    let after1 = load_safetensors_f64(&dir.join("after1.safetensors")).unwrap();
    let after3 = load_safetensors_f64(&dir.join("after3.safetensors")).unwrap();
    let mut t = Trainer::new(gpu, fixture_config(), 1).unwrap();
    t.load_state(&initial).unwrap();
    let crops: Vec<&[f32]> = (0..4).map(|i| initial[&format!("crop{i}")].data.as_slice()).collect();
    let want_losses = &after3["losses"].1;
    let tolerances = [8e-5, 3e-5, 2e-5]; // index.json: float32 port vs the float64 reference
    for step in 0..3 {
        let loss = t.step(&crops).unwrap() as f64;
        println!("step {}: loss {loss:.7} vs torch {:.7}", step + 1, want_losses[step]);
        assert!(
            (loss - want_losses[step]).abs() <= tolerances[step],
            "step {} loss {loss} vs {}",
            step + 1,
            want_losses[step]
        );
        if step == 0 {
            let state = t.state_blocking().unwrap();
            for (name, (_, want)) in after1.iter().filter(|(k, _)| !k.ends_with("num_batches_tracked") && *k != "loss")
            {
                if name.contains("projection_head.0.bias") {
                    continue;
                }
                let e = rel_to_max(&state[name].data, want);
                assert!(e <= if name.starts_with("momentum.") { 4e-4 } else { 2e-4 }, "after step 1, {name}: {e:.3e}");
            }
        }
    }
    let state = t.state_blocking().unwrap();
    let mut worst = (0.0, String::new());
    let mut checked = 0;
    for (name, (_, want)) in
        after3.iter().filter(|(k, _)| !k.ends_with("num_batches_tracked") && !["losses", "lr"].contains(&k.as_str()))
    {
        let got = &state.get(name).unwrap_or_else(|| panic!("no '{name}' in the trainer state")).data;
        if name == "projection_head.0.bias" {
            // Its gradient is rounding noise (BN follows); LARC makes its update ~ -lr*1e-3*p,
            // so the value is still checked loosely. Its momentum is pure noise (index.json
            // excludes both from the float32 comparison).
            assert!(rel_to_max(got, want) <= 1e-2, "{name}");
            continue;
        }
        if name == "momentum.projection_head.0.bias" {
            continue;
        }
        let e = rel_to_max(got, want);
        let tol = if name.starts_with("momentum.") { 4e-4 } else { 2e-4 };
        assert!(e <= tol, "after step 3, {name}: {e:.3e} > {tol:.0e}");
        if e > worst.0 {
            worst = (e, name.clone());
        }
        checked += 1;
    }
    println!("{checked} tensors after 3 steps; worst {:.2e} ({})", worst.0, worst.1);
    // 66 parameters + 42 BN running stats + 65 momentum buffers (prototypes' too), less the
    // excluded bias and its momentum.
    assert!(checked >= 170, "checked {checked}");
}

/// The same three steps with f16 activations (`--precision f16`) against the float64
/// fixture. f16 storage rounds every activation and activation gradient to 11 significant
/// bits, and sums that cancel (a batch-norm weight's gradient, sum dy * xhat) lose what f32
/// keeps, so values are compared as f16 allows: the first loss (same weights) closely, the
/// later ones looser, and each tensor's change over the three steps by its direction (the
/// cosine between swav-wgpu's update and PyTorch's; a wrong gradient points elsewhere) and
/// its size. Tolerances measured on llvmpipe (README, "Memory and precision").
#[test]
fn three_lars_steps_in_f16_follow_pytorch() {
    let Some(gpu) = f16_gpu("three_lars_steps_in_f16_follow_pytorch") else { return };
    let dir = fixture_dir();
    let initial = load_safetensors(&dir.join("initial.safetensors")).unwrap();
    let after3 = load_safetensors_f64(&dir.join("after3.safetensors")).unwrap();
    // As `--precision f16` trains: with the dynamic loss scale.
    let cfg = TrainConfig {
        precision: swav_wgpu::train::config::Precision::F16,
        loss_scale: swav_wgpu::optim::LossScale::Dynamic,
        ..fixture_config()
    };
    let mut t = Trainer::new(gpu, cfg, 1).unwrap();
    let f16_tensors = t.graph().tensors.iter().filter(|i| i.dtype == swav_wgpu::gpu::DType::F16).count();
    assert!(f16_tensors > 100, "only {f16_tensors} f16 tensors: the backbone is not stored in f16");
    t.load_state(&initial).unwrap();
    let crops: Vec<&[f32]> = (0..4).map(|i| initial[&format!("crop{i}")].data.as_slice()).collect();
    let want_losses = &after3["losses"].1;
    for (step, tol) in [F16_FIRST_LOSS_TOL, F16_LOSS_TOL, F16_LOSS_TOL].into_iter().enumerate() {
        let loss = t.step(&crops).unwrap() as f64;
        let e = (loss - want_losses[step]).abs() / want_losses[step];
        println!("f16 step {}: loss {loss:.7} vs torch {:.7} (relative {e:.2e})", step + 1, want_losses[step]);
        assert!(e <= tol, "f16 step {} loss {loss} vs {}: {e:.2e} > {tol:.0e}", step + 1, want_losses[step]);
    }
    let state = t.state_blocking().unwrap();
    let mut cosines = Vec::new();
    for (name, (_, want)) in after3.iter().filter(|(k, _)| {
        !k.ends_with("num_batches_tracked") && !k.starts_with("momentum.") && !["losses", "lr"].contains(&k.as_str())
    }) {
        let Some(start) = initial.get(name) else { continue };
        let got: Vec<f64> = state[name].data.iter().zip(&start.data).map(|(a, b)| (*a - *b) as f64).collect();
        let want: Vec<f64> = want.iter().zip(&start.data).map(|(a, b)| a - *b as f64).collect();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm(&want) == 0.0 || name.ends_with("projection_head.0.bias") {
            continue; // unchanged (prototypes frozen), or rounding noise in f32 already
        }
        let cos = got.iter().zip(&want).map(|(a, b)| a * b).sum::<f64>() / (norm(&got) * norm(&want));
        let size = norm(&got) / norm(&want);
        cosines.push((cos, size, name.clone()));
    }
    cosines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (cos, size, name) = &cosines[0];
    let median = cosines[cosines.len() / 2].0;
    println!("f16 updates of {} tensors vs PyTorch: worst cosine {cos:.4} ({name}, size ratio {size:.3}), median {median:.5}", cosines.len());
    assert!(cosines.len() >= 100, "compared {} tensors", cosines.len());
    assert!(*cos >= F16_WORST_COSINE, "f16: {name} moved in another direction (cosine {cos:.4})");
    assert!(median >= F16_MEDIAN_COSINE, "f16: median cosine {median:.5}");
    for (cos, size, name) in &cosines {
        assert!((0.5..=2.0).contains(size), "f16: {name} moved {size:.3} x as far as in PyTorch (cosine {cos:.4})");
    }
}

/// The f16 step's tolerances against the float64 fixture: the losses (relative), the worst
/// and the median cosine between a tensor's update over three steps and PyTorch's.
const F16_FIRST_LOSS_TOL: f64 = 1e-3;
const F16_LOSS_TOL: f64 = 2e-2;
const F16_WORST_COSINE: f64 = 0.7;
const F16_MEDIAN_COSINE: f64 = 0.99;

#[test]
fn optimizer_skips_the_update_when_the_loss_is_not_finite() {
    let Some(gpu) = gpu() else { return };
    let h = SgdHyper {
        lars: true,
        weight_decay: 1e-4,
        momentum: 0.9,
        trust: 0.001,
        eps: 1e-8,
        gated: false,
        unscale: false,
    };
    for bad in [f64::NAN, f64::INFINITY] {
        let (p, m) = (vec![0.5; 10], vec![0.25; 10]);
        let (tp, tg, tm) = (upload(&gpu, "p", &p), upload(&gpu, "g", &[1.0; 10]), upload(&gpu, "m", &m));
        let (pn, gn) = (nan_tensor(&gpu, "pn", 1), nan_tensor(&gpu, "gn", 1));
        let (opt, loss) = (
            upload(&gpu, "opt", &swav_wgpu::optim::step_state(0.5, 0, 0).to_values().map(f64::from)),
            upload(&gpu, "loss", &[bad]),
        );
        run(
            &gpu,
            &optim::sgd_step(
                &gpu,
                &optim::SgdTensors {
                    param: &tp,
                    grad: &tg,
                    momentum: &tm,
                    pnorm: &pn,
                    gnorm: &gn,
                    state: &opt,
                    loss: &loss,
                },
                h,
            )
            .unwrap(),
        );
        assert_eq!(read(&gpu, &tp), p, "parameters must not move on a {bad} loss");
        assert_eq!(read(&gpu, &tm), m);
    }
}

#[test]
fn optimizer_kernel_matches_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(90);
    for (n, lars, zero_param, gated, enabled) in [
        (1000, true, false, false, 1.0),
        (17, true, true, false, 1.0),
        (300, false, false, false, 1.0),
        (64, true, false, true, 0.0),
        (64, true, false, true, 1.0),
        (70_001, true, false, false, 1.0),
    ] {
        let mut p = if zero_param { vec![0.0; n] } else { rng.vec_f32(n) };
        let g = rng.vec_f32(n);
        let mut m = rng.vec_f32(n);
        let h = SgdHyper { lars, weight_decay: 1e-4, momentum: 0.9, trust: 0.001, eps: 1e-8, gated, unscale: false };
        let (tp, tg, tm) = (upload(&gpu, "p", &p), upload(&gpu, "g", &g), upload(&gpu, "m", &m));
        let (pn, gn) = (nan_tensor(&gpu, "pn", 1), nan_tensor(&gpu, "gn", 1));
        let opt = upload(
            &gpu,
            "opt",
            &swav_wgpu::optim::step_state(0.5, 2, if enabled == 1.0 { 0 } else { 9 }).to_values().map(f64::from),
        );
        let loss = upload(&gpu, "loss", &[1.0]);
        run(
            &gpu,
            &optim::sgd_step(
                &gpu,
                &optim::SgdTensors {
                    param: &tp,
                    grad: &tg,
                    momentum: &tm,
                    pnorm: &pn,
                    gnorm: &gn,
                    state: &opt,
                    loss: &loss,
                },
                h,
            )
            .unwrap(),
        );
        if !(gated && enabled == 0.0) {
            optim::cpu::sgd_step(&mut p, &g, &mut m, 0.5, &h);
        }
        let what = format!("n {n} lars {lars} zero {zero_param} gated {gated} on {enabled}");
        assert_close(&format!("param {what}"), &read(&gpu, &tp), &p, GPU_TOL);
        assert_close(&format!("momentum {what}"), &read(&gpu, &tm), &m, GPU_TOL);
    }
}

#[test]
fn adam_kernel_matches_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(91);
    // (n, gated, lr, 0-based step, prototypes unfrozen at, weight decay)
    for (n, gated, lr, step, unfreeze, wd) in [
        (1000, false, 1e-3, 0, 0, 0.0),
        (17, false, 5e-2, 6, 0, 1e-4),
        (70_001, false, 1e-3, 249, 1000, 1e-6),
        (64, true, 1e-3, 4, 10, 0.0),
        (64, true, 2e-3, 8, 7, 1e-4),
    ] {
        let state = swav_wgpu::optim::step_state(lr, step, unfreeze).to_values().map(f64::from);
        let mut p = rng.vec_f32(n);
        let g = rng.vec_f32(n);
        let mut m1 = rng.vec_f32(n);
        let mut m2: Vec<f64> = rng.vec_f32(n).iter().map(|v| v * v).collect();
        let h = AdamHyper { weight_decay: wd, beta1: 0.9, beta2: 0.999, eps: 1e-8, gated, unscale: false };
        let (tp, tg) = (upload(&gpu, "p", &p), upload(&gpu, "g", &g));
        let (t1, t2) = (upload(&gpu, "m1", &m1), upload(&gpu, "m2", &m2));
        let (opt, loss) = (upload(&gpu, "opt", &state), upload(&gpu, "loss", &[1.0]));
        run(
            &gpu,
            &[optim::adam_step(
                &gpu,
                &optim::AdamTensors { param: &tp, grad: &tg, m1: &t1, m2: &t2, state: &opt, loss: &loss },
                h,
            )
            .unwrap()],
        );
        let before = p.clone();
        if !(gated && step < unfreeze) {
            let t = if gated { step - unfreeze + 1 } else { step + 1 };
            // Bias corrections straight from the definition (not the helper the state uses).
            let c = (1.0 - 0.9f64.powi(t as i32), 1.0 - 0.999f64.powi(t as i32));
            optim::cpu::adam_step(&mut p, &g, &mut m1, &mut m2, lr, c, &h);
        }
        let what = format!("n {n} gated {gated} step {step} unfreeze {unfreeze}");
        assert_close(&format!("param {what}"), &read(&gpu, &tp), &p, GPU_TOL);
        assert_close(&format!("m1 {what}"), &read(&gpu, &t1), &m1, GPU_TOL);
        assert_close(&format!("m2 {what}"), &read(&gpu, &t2), &m2, GPU_TOL);
        // The update itself (p - p_before, lr-sized) must match too, not just be lost in p.
        let moved: Vec<f64> = read(&gpu, &tp).iter().zip(&before).map(|(a, b)| a - b).collect();
        let want: Vec<f64> = p.iter().zip(&before).map(|(a, b)| a - b).collect();
        if want.iter().any(|v| *v != 0.0) {
            assert_close(&format!("update {what}"), &moved, &want, 2e-3);
        } else {
            assert!(moved.iter().all(|v| *v == 0.0), "{what}: a frozen parameter moved");
        }
    }
    // A non-finite loss moves nothing.
    let (tp, tg) = (upload(&gpu, "p", &[0.5; 8]), upload(&gpu, "g", &[1.0; 8]));
    let (t1, t2) = (upload(&gpu, "m1", &[0.0; 8]), upload(&gpu, "m2", &[0.0; 8]));
    let (opt, loss) = (
        upload(&gpu, "opt", &swav_wgpu::optim::step_state(1e-3, 0, 0).to_values().map(f64::from)),
        upload(&gpu, "loss", &[f64::NAN]),
    );
    let h = AdamHyper { weight_decay: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8, gated: false, unscale: false };
    run(
        &gpu,
        &[optim::adam_step(
            &gpu,
            &optim::AdamTensors { param: &tp, grad: &tg, m1: &t1, m2: &t2, state: &opt, loss: &loss },
            h,
        )
        .unwrap()],
    );
    assert_eq!(read(&gpu, &tp), vec![0.5; 8]);
    assert_eq!(read(&gpu, &t1), vec![0.0; 8]);
}

/// The `unscale` update kernels (loss scaling): from a gradient scaled by S, with 1/S in the
/// step state, they compute what the CPU reference computes from the unscaled gradient; with
/// a non-finite found_inf in the loss's place they move nothing.
#[test]
fn unscaling_optimizer_kernels_match_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(92);
    for (n, scale, found_inf) in
        [(1000, 1024.0, 0.0), (70_001, 65536.0, 0.0), (17, 3.0, 0.0), (300, 8.0, f64::INFINITY)]
    {
        let mut st = swav_wgpu::optim::step_state(0.5, 3, 0);
        st.inv_scale = 1.0 / scale;
        let state = upload(&gpu, "opt", &st.to_values().map(f64::from));
        let inv = st.to_values()[6] as f64;
        let g = rng.vec_f32(n);
        // The gradient as loss scaling delivers it (exact in f32 for powers of two).
        let scaled: Vec<f64> = g.iter().map(|v| (v * scale) as f32 as f64).collect();
        let unscaled: Vec<f64> = scaled.iter().map(|v| v * inv).collect();
        let guard = upload(&gpu, "found_inf", &[found_inf]);
        let what = format!("n {n} scale {scale} found_inf {found_inf}");
        for lars in [true, false] {
            let (mut p, mut m) = (rng.vec_f32(n), rng.vec_f32(n));
            let h = SgdHyper {
                lars,
                weight_decay: 1e-4,
                momentum: 0.9,
                trust: 0.001,
                eps: 1e-8,
                gated: false,
                unscale: true,
            };
            let (tp, tg, tm) = (upload(&gpu, "p", &p), upload(&gpu, "g", &scaled), upload(&gpu, "m", &m));
            let (pn, gn) = (nan_tensor(&gpu, "pn", 1), nan_tensor(&gpu, "gn", 1));
            let t = optim::SgdTensors {
                param: &tp,
                grad: &tg,
                momentum: &tm,
                pnorm: &pn,
                gnorm: &gn,
                state: &state,
                loss: &guard,
            };
            // With loss scaling LARS's norms run before every update, not in the step.
            let mut d = if lars { optim::sgd_norms(&gpu, &tp, &tg, &pn, &gn).unwrap() } else { Vec::new() };
            let update = optim::sgd_step(&gpu, &t, h).unwrap();
            assert_eq!(update.len(), 1, "{what}: the unscaling step computes no norms");
            d.extend(update);
            run(&gpu, &d);
            if found_inf == 0.0 {
                optim::cpu::sgd_step(&mut p, &unscaled, &mut m, 0.5, &h);
            }
            assert_close(&format!("sgd param lars {lars} {what}"), &read(&gpu, &tp), &p, GPU_TOL);
            assert_close(&format!("sgd momentum lars {lars} {what}"), &read(&gpu, &tm), &m, GPU_TOL);
        }
        let (mut p, mut m1) = (rng.vec_f32(n), rng.vec_f32(n));
        let mut m2: Vec<f64> = rng.vec_f32(n).iter().map(|v| v * v).collect();
        let h = AdamHyper { weight_decay: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, gated: false, unscale: true };
        let (tp, tg) = (upload(&gpu, "p", &p), upload(&gpu, "g", &scaled));
        let (t1, t2) = (upload(&gpu, "m1", &m1), upload(&gpu, "m2", &m2));
        let t = optim::AdamTensors { param: &tp, grad: &tg, m1: &t1, m2: &t2, state: &state, loss: &guard };
        run(&gpu, &[optim::adam_step(&gpu, &t, h).unwrap()]);
        if found_inf == 0.0 {
            optim::cpu::adam_step(&mut p, &unscaled, &mut m1, &mut m2, 0.5, st.corrections, &h);
        }
        assert_close(&format!("adam param {what}"), &read(&gpu, &tp), &p, GPU_TOL);
        assert_close(&format!("adam m1 {what}"), &read(&gpu, &t1), &m1, GPU_TOL);
        assert_close(&format!("adam m2 {what}"), &read(&gpu, &t2), &m2, GPU_TOL);
    }
}

/// Loss scaling's check: found_inf becomes +inf when any element is NaN or infinite, wherever
/// it lies (first, last, past a workgroup's end), stays as it was otherwise (the largest and
/// the subnormal finite values included), and an earlier +inf is never cleared.
#[test]
fn the_overflow_check_flags_every_non_finite_element_and_nothing_else() {
    let Some(gpu) = gpu() else { return };
    let finite = |n: usize| -> Vec<f32> {
        (0..n).map(|i| [1.0, -0.0, f32::MAX, -f32::MAX, 1e-45, f32::MIN_POSITIVE][i % 6]).collect()
    };
    let check = |x: &[f32], start: f32| -> f32 {
        let t = gpu.tensor_from("x", &[x.len()], x).unwrap();
        let found = gpu.tensor_from("found_inf", &[1], &[start]).unwrap();
        run(&gpu, &[optim::check_finite(&gpu, &t, &found).unwrap()]);
        gpu.read_blocking(&found).unwrap()[0]
    };
    for n in [1, 255, 256, 257, 70_001] {
        assert_eq!(check(&finite(n), 0.0).to_bits(), 0, "n {n}: finite values flagged");
        assert_eq!(check(&finite(n), f32::INFINITY), f32::INFINITY, "n {n}: an earlier overflow was cleared");
        for at in [0, n / 2, n - 1] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(0xffc0_0001)] {
                let mut x = finite(n);
                x[at] = bad;
                assert_eq!(check(&x, 0.0), f32::INFINITY, "n {n}: {bad} at {at} not flagged");
                let cpu = optim::cpu::check_finite(&x.iter().map(|&v| v as f64).collect::<Vec<_>>(), 0.0);
                assert_eq!(cpu, f64::INFINITY, "the CPU reference missed {bad}");
            }
        }
    }
    // The CPU reference sees f64 values: one beyond f32's range has overflowed on the GPU.
    assert_eq!(optim::cpu::check_finite(&[1.0, 1e39], 0.0), f64::INFINITY);
    assert_eq!(optim::cpu::check_finite(&[1.0, 3e38], 0.0), 0.0);
}

/// A small config for resume and export tests, random init, with a queue that starts at
/// epoch 1 so the resumed run crosses its start.
fn small_config() -> TrainConfig {
    TrainConfig {
        batch_size: 4,
        queue_length: 8,
        epoch_queue_starts: 1,
        epochs: 3,
        freeze_prototypes_niters: 2,
        lr: 0.5,
        ..fixture_config()
    }
}

fn synthetic_crops(cfg: &TrainConfig, iteration: usize) -> Vec<Vec<f32>> {
    let mut rng = swav_wgpu::rng::Rng::derive(7, iteration as u64, 0);
    cfg.crops
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.size, c.count))
        .map(|s| (0..cfg.batch_size * 3 * s * s).map(|_| rng.normal() as f32).collect())
        .collect()
}

fn run_steps(t: &mut Trainer, from: usize, to: usize) {
    for it in from..to {
        let crops = synthetic_crops(&t.cfg, it);
        let refs: Vec<&[f32]> = crops.iter().map(|c| c.as_slice()).collect();
        let loss = t.step(&refs).unwrap();
        assert!(loss.is_finite());
    }
}

#[test]
fn resume_is_bit_exact() {
    let Some(gpu) = gpu() else { return };
    check_resume_is_bit_exact(&gpu, small_config(), "plain", None);
}

/// With dynamic loss scaling, an overflow at step 1 (skipped, scale halved) before the
/// checkpoint at 2 and a growth after it (interval 3): the resumed run continues with the same
/// scale, clean count and skips (Adam's step count leaves the skip out), bit for bit.
#[test]
fn resume_with_loss_scaling_and_a_skip_is_bit_exact() {
    let Some(gpu) = gpu() else { return };
    let cfg = TrainConfig {
        loss_scale: LossScale::Dynamic,
        loss_scale_growth_interval: 3,
        optimizer: OptimizerKind::Adam,
        ..small_config()
    };
    let (a, b) = check_resume_is_bit_exact(&gpu, cfg, "scaled", Some(1));
    assert_eq!(a.scaler, b.scaler);
    // Step 1 skipped: 2^16 halved to 2^15, then 3 clean steps (2, 3, 4) double it; step 5 is
    // the first of the next 3.
    let s = &b.scaler;
    assert_eq!((s.scale, s.clean_steps, s.skipped, s.skipped_unfrozen), (65536.0, 1, 1, 0), "{s:?}");
}

/// Trains `cfg` 6 steps in one go and 2 + 4 across a checkpoint (an overflow injected before
/// step `overflow_at`), and checks that every tensor of the two runs is the same bit for bit.
fn check_resume_is_bit_exact(
    gpu: &Arc<Gpu>,
    cfg: TrainConfig,
    name: &str,
    overflow_at: Option<usize>,
) -> (Trainer, Trainer) {
    let dir = std::env::temp_dir().join(format!("swav-wgpu-resume-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("step2.safetensors");
    let iters_per_epoch = 2;

    let mut a = Trainer::new(gpu.clone(), cfg.clone(), iters_per_epoch).unwrap();
    a.init_random(3).unwrap();
    for it in 0..2 {
        if overflow_at == Some(it) {
            a.inject_overflow().unwrap();
        }
        run_steps(&mut a, it, it + 1);
    }
    assert_eq!(a.scaler.skipped, overflow_at.is_some() as usize);
    a.save_checkpoint(&ckpt, 1234, &HashMap::new()).unwrap();
    run_steps(&mut a, 2, 6);
    let uninterrupted = a.state_blocking().unwrap();

    let (mut b, meta) = Trainer::from_checkpoint(gpu.clone(), &ckpt).unwrap();
    assert_eq!((meta.iteration, meta.rng_state, meta.iters_per_epoch), (2, 1234, iters_per_epoch));
    assert_eq!(meta.config, cfg);
    run_steps(&mut b, 2, 6);
    let resumed = b.state_blocking().unwrap();
    assert!(a.queue_in_use() && b.queue_in_use(), "the queue was in use by the end");
    assert_eq!(uninterrupted.len(), resumed.len());
    for (name, t) in &uninterrupted {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&t.data) == bits(&resumed[name].data), "'{name}' differs after resume");
    }
    std::fs::remove_dir_all(&dir).ok();
    (a, b)
}

/// The parameters and the optimizer's state, as bits: what a skipped step leaves as it was
/// (batch-norm's running statistics and the queue move in every forward, as in PyTorch).
fn trained_bits(t: &Trainer) -> BTreeMap<String, Vec<u32>> {
    let params: Vec<String> = t.graph().named(Kind::Parameter).into_iter().map(|(n, _)| n).collect();
    let trained =
        |n: &str| params.iter().any(|p| p == n) || (swav_wgpu::optim::is_run_state(n) && !n.starts_with("queue."));
    t.state_blocking()
        .unwrap()
        .into_iter()
        .filter(|(n, _)| trained(n))
        .map(|(n, v)| (n, v.data.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// A scale of 1e38 overflows the gradients: the step is skipped (no parameter, momentum or
/// Adam moment moves but by the prototypes' renormalisation in the forward; found_inf reads
/// +inf), the scale halves and the skip is counted; the
/// iteration advances (the learning-rate schedule with it). With a workable scale again the
/// next step is taken. LARS and Adam.
#[test]
fn an_overflowing_step_is_skipped_and_the_scale_halves() {
    let Some(gpu) = gpu() else { return };
    for optimizer in [OptimizerKind::Lars, OptimizerKind::Adam] {
        let cfg =
            TrainConfig { loss_scale: LossScale::Dynamic, optimizer, freeze_prototypes_niters: 0, ..small_config() };
        let mut t = Trainer::new(gpu.clone(), cfg, 2).unwrap();
        t.init_random(5).unwrap();
        run_steps(&mut t, 0, 1);
        assert!(!t.scaler.last_skipped && t.scaler.skipped == 0, "{optimizer}: the first step overflowed");
        t.scaler.scale = 1e38;
        let before = trained_bits(&t);
        assert!(before.keys().any(|k| k.starts_with("momentum.")), "{:?}", before.keys());
        run_steps(&mut t, 1, 2);
        let s = &t.scaler;
        assert!(s.last_skipped, "{optimizer}: a scale of 1e38 did not overflow");
        assert_eq!((s.scale, s.skipped, s.skipped_unfrozen, s.clean_steps, t.iteration), (5e37, 1, 1, 0, 2));
        assert_eq!(t.plan.read_named("optim.found_inf").unwrap(), vec![f32::INFINITY]);
        let after = trained_bits(&t);
        for (name, bits) in &before {
            if name == "prototypes.weight" {
                // Renormalised in every forward, before the step (main_swav.py does it at the
                // top of its loop): their rows are the unit rows of before, not updated.
                let d = t.graph().shape(t.graph().by_name(name).unwrap())[1];
                let rows: Vec<f64> = bits.iter().map(|b| f32::from_bits(*b) as f64).collect();
                let unit: Vec<f64> = rows
                    .chunks(d)
                    .flat_map(|r| {
                        let n = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                        r.iter().map(move |x| x / n)
                    })
                    .collect();
                let got: Vec<f64> = after[name].iter().map(|b| f32::from_bits(*b) as f64).collect();
                assert_close(&format!("{optimizer}: the prototypes of a skipped step"), &got, &unit, 1e-6);
                continue;
            }
            assert!(*bits == after[name], "{optimizer}: '{name}' moved in a skipped step");
        }
        t.scaler.scale = 1024.0;
        run_steps(&mut t, 2, 3);
        assert!(!t.scaler.last_skipped && t.scaler.skipped == 1);
        assert_eq!(t.plan.read_named("optim.found_inf").unwrap(), vec![0.0]);
        let taken = trained_bits(&t);
        assert!(before.iter().all(|(n, b)| *b != taken[n]), "{optimizer}: a taken step left a tensor as it was");
    }
}

/// Dynamic scaling with a growth interval of 2: the scale doubles after every 2 clean steps,
/// and a skipped step halves it and restarts the count.
#[test]
fn the_loss_scale_doubles_after_growth_interval_clean_steps() {
    let Some(gpu) = gpu() else { return };
    let cfg = TrainConfig {
        loss_scale: LossScale::Dynamic,
        loss_scale_growth_interval: 2,
        optimizer: OptimizerKind::Adam,
        ..small_config()
    };
    let mut t = Trainer::new(gpu, cfg, 2).unwrap();
    t.init_random(6).unwrap();
    let mut scales = Vec::new();
    for it in 0..7 {
        if it == 3 {
            t.inject_overflow().unwrap();
        }
        run_steps(&mut t, it, it + 1);
        scales.push((t.scaler.scale, t.scaler.clean_steps, t.scaler.last_skipped));
    }
    let (s16, s17) = (65536.0, 131072.0);
    let want = [
        (s16, 1, false),
        (s17, 0, false),
        (s17, 1, false),
        (s16, 0, true),
        (s16, 1, false),
        (s17, 0, false),
        (s17, 1, false),
    ];
    assert_eq!(scales, want);
    assert_eq!(t.scaler.skipped, 1);
}

/// A power-of-two loss scale changes no number of the step: the seed scales every gradient
/// exactly, and the updates unscale them exactly (1/S is exact too). Three LARS steps of the
/// fixture and three Adam steps, unscaled vs a fixed 2^10 and a dynamic scale that grows from
/// 2^16 to 2^17 mid-run: losses and every tensor of the state, bit for bit.
#[test]
fn a_power_of_two_loss_scale_changes_no_bit() {
    let Some(gpu) = gpu() else { return };
    let initial = load_safetensors(&fixture_dir().join("initial.safetensors")).unwrap();
    let crops: Vec<&[f32]> = (0..4).map(|i| initial[&format!("crop{i}")].data.as_slice()).collect();
    for optimizer in [OptimizerKind::Lars, OptimizerKind::Adam] {
        let run = |loss_scale: LossScale| {
            let cfg =
                TrainConfig { loss_scale, loss_scale_growth_interval: 2, optimizer, lr: 0.01, ..fixture_config() };
            let mut t = Trainer::new(gpu.clone(), cfg, 1).unwrap();
            t.load_state(&initial).unwrap();
            let losses: Vec<u32> = (0..3).map(|_| t.step(&crops).unwrap().to_bits()).collect();
            let state: BTreeMap<String, Vec<u32>> = t
                .state_blocking()
                .unwrap()
                .into_iter()
                .map(|(n, v)| (n, v.data.iter().map(|x| x.to_bits()).collect()))
                .collect();
            (losses, state, t.scaler.clone())
        };
        let (losses, state, _) = run(LossScale::Off);
        for scale in [LossScale::Fixed(1024.0), LossScale::Dynamic] {
            let (l, s, scaler) = run(scale);
            assert_eq!(scaler.skipped, 0, "{optimizer} {scale}");
            if scale == LossScale::Dynamic {
                assert_eq!(scaler.scale, 131072.0, "the dynamic scale grew mid-run");
            }
            assert_eq!(l, losses, "{optimizer} {scale}: the losses differ");
            for (name, bits) in &state {
                let differ = bits.iter().zip(&s[name]).filter(|(a, b)| a != b).count();
                assert!(
                    differ == 0,
                    "{optimizer} loss scale {scale}: '{name}' differs in {differ} of {} values",
                    bits.len()
                );
            }
        }
    }
}

#[test]
fn checkpoint_errors_are_clear() {
    let Some(gpu) = gpu() else { return };
    let dir = std::env::temp_dir().join(format!("swav-wgpu-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = Trainer::from_checkpoint(gpu.clone(), &dir.join("nope.safetensors")).err().unwrap();
    assert!(missing.to_string().contains("nope.safetensors"), "{missing}");
    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"not a checkpoint").unwrap();
    let e = Trainer::from_checkpoint(gpu.clone(), &corrupt).err().unwrap();
    assert!(e.to_string().contains("corrupt.safetensors"), "{e}");
    // A checkpoint of another architecture is refused by name.
    let a = Trainer::new(gpu.clone(), small_config(), 1).unwrap();
    a.init_random(1).unwrap();
    let ckpt = dir.join("small.safetensors");
    a.save_checkpoint(&ckpt, 0, &HashMap::new()).unwrap();
    let mut other = Trainer::new(gpu.clone(), TrainConfig { width: 0.25, ..small_config() }, 1).unwrap();
    let e = other.load_checkpoint(&ckpt).err().unwrap();
    assert!(e.to_string().contains("x0.125") && e.to_string().contains("x0.25"), "{e}");
    // One flipped bit in the tensors is caught by the checksum, never loaded as a model.
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x10;
    let flipped = dir.join("flipped.safetensors");
    std::fs::write(&flipped, &bytes).unwrap();
    let e = Trainer::from_checkpoint(gpu, &flipped).err().unwrap().to_string();
    assert!(e.contains("flipped.safetensors") && e.contains("checksum"), "{e}");
    let e = swav_wgpu::io::load_safetensors(&flipped).err().unwrap().to_string();
    assert!(e.contains("damaged"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn altered_checkpoint_metadata_is_refused_and_older_checkpoints_load() {
    let Some(gpu) = gpu() else { return };
    let dir = std::env::temp_dir().join(format!("swav-wgpu-ckpt-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = Trainer::new(gpu.clone(), small_config(), 1).unwrap();
    a.init_random(1).unwrap();
    let ckpt = dir.join("run.safetensors");
    a.save_checkpoint(&ckpt, 0, &HashMap::new()).unwrap();
    let bytes = std::fs::read(&ckpt).unwrap();
    // Edit the metadata in place (the header stays valid JSON of the same length): the data
    // pipeline's RNG state, which the tensors' checksum does not cover.
    let find = |b: &[u8], what: &[u8]| b.windows(what.len()).position(|w| w == what).expect("in the header");
    let mut edited = bytes.clone();
    let at = find(&edited, b"\"rng_state\":\"0\"");
    edited[at + 13] = b'7';
    let altered = dir.join("altered.safetensors");
    std::fs::write(&altered, &edited).unwrap();
    for e in [
        Trainer::checkpoint_meta(&altered).expect_err("refused").to_string(),
        Trainer::from_checkpoint(gpu.clone(), &altered).err().expect("refused").to_string(),
        swav_wgpu::io::load_safetensors(&altered).expect_err("refused").to_string(),
    ] {
        assert!(e.contains("altered.safetensors") && e.contains("metadata does not match its checksum"), "{e}");
    }
    // A checkpoint whose metadata checksum was lost is refused too.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut meta = swav_wgpu::io::read_metadata(&ckpt).unwrap();
    meta.remove(swav_wgpu::io::METADATA_CHECKSUM_KEY);
    let stripped = dir.join("stripped.safetensors");
    std::fs::write(&stripped, safetensors::serialize(st.tensors(), Some(meta.clone())).unwrap()).unwrap();
    let e = Trainer::checkpoint_meta(&stripped).expect_err("refused").to_string();
    assert!(e.contains("stripped.safetensors") && e.contains("lost its checksum"), "{e}");
    // A checkpoint of format 1 (before the metadata checksum) loads as before.
    meta.insert("format".into(), "swav-wgpu-checkpoint/1".into());
    let old = dir.join("old.safetensors");
    std::fs::write(&old, safetensors::serialize(st.tensors(), Some(meta)).unwrap()).unwrap();
    let (b, m) = Trainer::from_checkpoint(gpu, &old).expect("a format-1 checkpoint loads");
    assert_eq!((m.iteration, m.rng_state), (0, 0));
    assert_eq!(b.state_blocking().unwrap().len(), a.state_blocking().unwrap().len());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn exported_backbone_has_the_torchvision_keys() {
    let Some(gpu) = gpu() else { return };
    let t = Trainer::new(gpu, fixture_config(), 1).unwrap();
    t.init_random(5).unwrap();
    let dir = std::env::temp_dir().join(format!("swav-wgpu-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("backbone.safetensors");
    t.export_backbone(&path).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let exported = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let fixture_bytes = std::fs::read(fixture_dir().join("initial.safetensors")).unwrap();
    let fixture = safetensors::SafeTensors::deserialize(&fixture_bytes).unwrap();
    let torchvision: Vec<String> = fixture
        .names()
        .into_iter()
        .filter(|n| {
            !n.starts_with("projection_head") && !n.starts_with("prototypes") && !n.starts_with("crop") && *n != "lr"
        })
        .map(String::from)
        .collect();
    let mut mine: Vec<String> = exported.names().into_iter().map(String::from).collect();
    let mut want = torchvision.clone();
    mine.sort();
    want.sort();
    assert_eq!(mine, want, "exported keys differ from torchvision's");
    for name in &want {
        let (a, b) = (exported.tensor(name).unwrap(), fixture.tensor(name).unwrap());
        assert_eq!(a.shape(), b.shape(), "{name}");
        // The fixture is a float64 reference; a torchvision model is float32. Integer
        // counters are int64 in both.
        let want_dtype = if b.dtype() == safetensors::Dtype::F64 { safetensors::Dtype::F32 } else { b.dtype() };
        assert_eq!(a.dtype(), want_dtype, "{name}");
    }
    // Where Python's safetensors is installed, it reads the file too (torch.load_state_dict
    // goes through the same reader).
    let probe = std::process::Command::new("python3").args(["-c", "import safetensors.numpy"]).output();
    if probe.map(|o| o.status.success()).unwrap_or(false) {
        let script = format!("from safetensors.numpy import load_file\nsd = load_file({:?})\nassert len(sd) == {}, len(sd)\nprint('python read', len(sd), 'tensors')", path.display().to_string(), want.len());
        let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        eprintln!("python3 with safetensors not available: key, shape and dtype checks only");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn impossible_augmentation_settings_are_named() {
    for (cfg, needle) in [
        (TrainConfig { hue: 0.9, ..TrainConfig::default() }, "hue"),
        (TrainConfig { color_jitter: -1.0, ..TrainConfig::default() }, "color_jitter"),
    ] {
        let e = cfg.validate().expect_err(needle);
        assert!(e.to_string().contains(needle), "{e}");
    }
    // Names of the architecture, stem and optimizer are checked as the file is read.
    for (line, needle) in
        [("optimizer = \"adamw\"", "adamw"), ("arch = \"resnet9\"", "resnet9"), ("stem = \"big\"", "big")]
    {
        let e = TrainConfig::from_toml(line).expect_err(needle).to_string();
        assert!(e.contains(needle) && e.contains("expected one of"), "{e}");
    }
    let cfg = TrainConfig::from_toml("arch = \"resnet50\"\nstem = \"imagenet\"\noptimizer = \"sgd\"").unwrap();
    assert_eq!(
        (cfg.arch.to_string(), cfg.stem.to_string(), cfg.optimizer.to_string()),
        ("resnet50".into(), "imagenet".into(), "sgd".into())
    );
    assert!(TrainConfig { optimizer: swav_wgpu::optim::OptimizerKind::Adam, hue: 0.5, ..TrainConfig::default() }
        .validate()
        .is_ok());
}

/// One identity per kernel: every pipeline that training steps create (multi-crop, queue,
/// frozen then learned prototypes, LARS and Adam, with and without loss scaling) is in
/// `all_kernel_sources`, under the same name and with the same source, so `tests/shaders.rs`
/// has validated exactly what runs.
#[test]
fn every_kernel_a_training_step_compiles_is_validated() {
    let Some(gpu) = gpu() else { return };
    for cfg in [
        small_config(),
        TrainConfig {
            optimizer: swav_wgpu::optim::OptimizerKind::Adam,
            stem: swav_wgpu::model::Stem::CifarPool,
            ..small_config()
        },
        // Loss scaling: the unscaling updates and the overflow check, LARS and Adam.
        TrainConfig { loss_scale: LossScale::Dynamic, ..small_config() },
        TrainConfig { loss_scale: LossScale::Dynamic, optimizer: OptimizerKind::Adam, ..small_config() },
    ] {
        let mut t = Trainer::new(gpu.clone(), cfg, 1).unwrap();
        t.init_random(2).unwrap();
        run_steps(&mut t, 0, 3);
    }
    let validated: HashMap<String, String> =
        swav_wgpu::ops::all_kernel_sources().into_iter().map(|k| (k.name, k.source)).collect();
    let compiled = gpu.compiled_kernels();
    assert!(compiled.len() > 10, "only {} kernels compiled", compiled.len());
    let mut missing = Vec::new();
    for (name, source) in &compiled {
        match validated.get(name) {
            None => missing.push(format!("{name}: not in all_kernel_sources")),
            Some(v) if v != source => missing.push(format!("{name}: validated source differs from the compiled one")),
            Some(_) => {}
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} compiled kernels unvalidated:\n{}",
        missing.len(),
        compiled.len(),
        missing.join("\n")
    );
}

/// A device of its own with `mode` tuning, cached in `cache`, timed by `timer`.
fn tuned_gpu(mode: TuneMode, cache: Option<PathBuf>, timer: Timer) -> Option<Arc<Gpu>> {
    gpu()?;
    let gpu =
        pollster::block_on(Gpu::new(&GpuOptions { tune: mode, tune_cache: cache, ..GpuOptions::from_env() })).unwrap();
    gpu.tuner.set_timer(timer);
    Some(gpu)
}

/// A timer that calls one variant fast and every other slow, by the kernels it dispatches.
fn prefer(variant: &'static str) -> Timer {
    Arc::new(move |_: &Gpu, d: &[Dispatch]| if d.iter().any(|d| d.label.contains(variant)) { 1.0 } else { 2.0 })
}

#[test]
fn tuning_is_deterministic_and_cached_on_disk() {
    let dir = std::env::temp_dir().join(format!("swav-wgpu-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = dir.join("tune.json");
    let want = "workgroup_tiled_128x64x16_8x4";
    let Some(a) = tuned_gpu(TuneMode::Full, Some(cache.clone()), prefer(want)) else { return };
    Trainer::new(a.clone(), fixture_config(), 1).unwrap();
    let stats = a.tuner.stats();
    assert!(stats.tuned >= 10, "{stats:?}");
    let choices = a.tuner.choices();
    assert_eq!(choices.len(), stats.tuned);
    for (key, v) in &choices {
        assert_eq!(v, want, "{key}");
    }
    // Ops of one shape are timed once (the later ones are cache hits); the same plan again on
    // the same device takes every choice from memory.
    let gemm_ops = stats.tuned + stats.cached;
    Trainer::new(a.clone(), fixture_config(), 1).unwrap();
    assert_eq!(a.tuner.stats().tuned, stats.tuned);
    assert_eq!(a.tuner.stats().cached, stats.cached + gemm_ops);
    // A new process (here: a new device) reads the choices from disk and times nothing.
    let never: Timer = Arc::new(|_: &Gpu, _: &[Dispatch]| panic!("the cache should have answered"));
    let b = tuned_gpu(TuneMode::Full, Some(cache.clone()), never).unwrap();
    Trainer::new(b.clone(), fixture_config(), 1).unwrap();
    assert_eq!(b.tuner.stats().tuned, 0);
    assert_eq!(b.tuner.stats().cached, gemm_ops);
    assert_eq!(b.tuner.choices(), choices);
    // Off times nothing either, and keeps the chooser's picks.
    let off = tuned_gpu(TuneMode::Off, None, Arc::new(|_: &Gpu, _: &[Dispatch]| panic!("off must not time"))).unwrap();
    Trainer::new(off.clone(), fixture_config(), 1).unwrap();
    assert_eq!(off.tuner.stats(), TuneStats::default());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_tuned_plan_computes_what_the_untuned_one_does() {
    let Some(plain) = gpu() else { return };
    // Every GEMM-backed op on the 128x128 workgroup tiles instead of the chooser's pick.
    let Some(tuned) = tuned_gpu(TuneMode::Full, None, prefer("workgroup_tiled_128x128")) else { return };
    let dir = fixture_dir();
    let initial = load_safetensors(&dir.join("initial.safetensors")).unwrap();
    let crops: Vec<&[f32]> = (0..4).map(|i| initial[&format!("crop{i}")].data.as_slice()).collect();
    let mut runs = Vec::new();
    for gpu in [plain, tuned.clone()] {
        let mut t = Trainer::new(gpu, fixture_config(), 1).unwrap();
        t.load_state(&initial).unwrap();
        let losses: Vec<f32> = (0..2).map(|_| t.step(&crops).unwrap()).collect();
        runs.push((losses, t.state_blocking().unwrap()));
    }
    assert!(tuned.tuner.choices().values().all(|v| v.starts_with("workgroup_tiled_128x128")));
    let ((la, sa), (lb, sb)) = (&runs[0], &runs[1]);
    for (a, b) in la.iter().zip(lb) {
        assert!((a - b).abs() <= 1e-4 * a.abs(), "losses {la:?} vs {lb:?}");
    }
    for (name, a) in sa {
        // Its gradient is rounding noise (batch-norm follows), as in three_lars_steps_match_pytorch.
        if name.ends_with("projection_head.0.bias") {
            continue;
        }
        let b = &sb[name];
        let scale = a.data.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        let worst = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) / scale;
        assert!(worst <= 1e-4, "{name}: tuned vs untuned after 2 steps, relative error {worst:e}");
    }
}

/// GPU timestamps (pass-boundary, WebGPU's `timestamp-query`) measure work: a pass of eight
/// 256^3 matmuls takes longer than one 4-element fill, every time is finite and positive, and
/// a plan's profile times each dispatch. llvmpipe has timestamps, so CI must use them.
#[test]
fn gpu_timestamps_time_kernels() {
    use swav_wgpu::ops::matmul::{self, GemmVariant, MatmulShape};
    let Some(gpu) = gpu() else { return };
    if gpu.info.name.contains("llvmpipe") {
        assert!(gpu.has_timestamps(), "llvmpipe has timestamp queries: the timing path must be tested");
    }
    if !gpu.has_timestamps() {
        eprintln!("GPU timestamps NOT TESTED: {} has no TIMESTAMP_QUERY", gpu.describe());
        return;
    }
    let n = 256;
    let data: Vec<f32> = (0..n * n).map(|i| (i % 13) as f32 * 0.1).collect();
    let a = gpu.tensor_from("a", &[n * n], &data).unwrap();
    let c = gpu.tensor_from("c", &[n * n], &data).unwrap();
    let s = MatmulShape { m: n, n, k: n, trans_a: false, trans_b: false };
    let mut heavy = Vec::new();
    for _ in 0..8 {
        heavy.extend(matmul::matmul(&gpu, &a, &a, None, &c, s, GemmVariant::for_matmul(&gpu)).unwrap());
    }
    let small = gpu.tensor_from("s", &[4], &[0.0; 4]).unwrap();
    let light = vec![swav_wgpu::ops::elementwise::fill(&gpu, &small, 1.0).unwrap()];
    let t = gpu.gpu_times(&[&light, &heavy, &light]).unwrap().expect("timestamps");
    assert_eq!(t.len(), 3);
    assert!(t.iter().all(|x| x.is_finite() && *x >= 0.0), "{t:?}");
    assert!(t[1] > 0.0 && t[1] > 4.0 * t[0].max(t[2]), "8 matmuls vs one fill: {t:?}");
    let (secs, by_timestamps) = gpu.time_dispatches(&heavy, 3).unwrap();
    assert!(by_timestamps && secs > 0.0);

    let t = Trainer::new(gpu.clone(), fixture_config(), 1).unwrap();
    let profile = t.plan.profile_dispatches().unwrap();
    assert_eq!(profile.len(), t.plan.dispatch_count());
    assert!(profile.iter().all(|(_, s)| s.is_finite() && *s >= 0.0));
    assert!(profile.iter().map(|(_, s)| s).sum::<f64>() > 0.0);
}

/// Without timestamps (SWAV_WGPU_NO_TIMESTAMPS / `--no-timestamps`) timing falls back to wall time.
#[test]
fn without_timestamps_timing_is_wall_clock() {
    if gpu().is_none() {
        return;
    }
    let gpu = pollster::block_on(Gpu::new(&GpuOptions { no_timestamps: true, ..GpuOptions::from_env() })).unwrap();
    assert!(!gpu.has_timestamps());
    let small = gpu.tensor_from("s", &[4], &[0.0; 4]).unwrap();
    let d = vec![swav_wgpu::ops::elementwise::fill(&gpu, &small, 1.0).unwrap()];
    assert!(gpu.gpu_times(&[&d]).unwrap().is_none());
    let (secs, by_timestamps) = gpu.time_dispatches(&d, 3).unwrap();
    assert!(!by_timestamps && secs > 0.0);
}

/// What each tuning mode times: quick on a real GPU the workgroup tiles; full adds the
/// subgroup tiles of at most 128 accumulators where there are fixed-size subgroups; quick
/// times nothing on a software adapter, full every variant. The chooser's pick comes first.
#[test]
fn tuning_candidates_per_mode_and_adapter() {
    use swav_wgpu::gpu::AdapterClass;
    use swav_wgpu::ops::matmul::tuning_candidates as candidates;
    use swav_wgpu::ops::matmul::GemmVariant;
    let default = GemmVariant::WORKGROUP_DEFAULT;
    let quick_gpu = candidates(TuneMode::Quick, AdapterClass::Gpu, None, default);
    assert_eq!(quick_gpu, GemmVariant::WORKGROUP_TILES.to_vec());
    assert_eq!(candidates(TuneMode::Quick, AdapterClass::Gpu, Some(32), default), quick_gpu);
    let full_sg = candidates(TuneMode::Full, AdapterClass::Gpu, Some(32), default);
    assert_eq!(full_sg[..4], GemmVariant::WORKGROUP_TILES);
    assert_eq!(full_sg[4..], [GemmVariant::SubgroupTiled { tm: 32, tn: 4, sg: 32 }]);
    assert_eq!(candidates(TuneMode::Full, AdapterClass::Gpu, None, default), quick_gpu);
    let reg = GemmVariant::RegisterTiled { tm: 12, tn: 16 };
    assert_eq!(candidates(TuneMode::Quick, AdapterClass::Cpu, Some(8), reg), vec![reg]);
    assert_eq!(candidates(TuneMode::Off, AdapterClass::Gpu, Some(32), default), vec![default]);
    let full = candidates(TuneMode::Full, AdapterClass::Cpu, Some(8), reg);
    assert_eq!(full[0], reg);
    assert_eq!(full.len(), GemmVariant::all(Some(8)).len());
    assert!(full.contains(&GemmVariant::SubgroupTiled { tm: 8, tn: 4, sg: 8 }));
}

/// The fixture's three LARS steps, bit for bit, on the adapter CI runs: losses and every
/// tensor of the trainer's state, hashed. Refactors (moving an op's rules, dtypes) must leave
/// this unchanged; a deliberate numeric change updates the pin and says why. Other adapters
/// print their hash (their kernels and rounding differ).
#[test]
fn the_fixture_steps_are_pinned_bit_for_bit() {
    const PINNED: (&str, &str) = ("llvmpipe (LLVM 15.0.6, 256 bits)", "25cb478125cd91bd");
    let Some(gpu) = gpu() else { return };
    let initial = load_safetensors(&fixture_dir().join("initial.safetensors")).unwrap();
    let mut t = Trainer::new(gpu.clone(), fixture_config(), 1).unwrap();
    t.load_state(&initial).unwrap();
    let crops: Vec<&[f32]> = (0..4).map(|i| initial[&format!("crop{i}")].data.as_slice()).collect();
    let mut h = swav_wgpu::rng::Fnv::new();
    for _ in 0..3 {
        h.eat(&t.step(&crops).unwrap().to_bits().to_le_bytes());
    }
    for (name, v) in t.state_blocking().unwrap() {
        h.eat(name.as_bytes());
        for x in &v.data {
            h.eat(&x.to_bits().to_le_bytes());
        }
    }
    let got = format!("{:016x}", h.finish());
    println!("fixture steps on {}: {got}", gpu.info.name);
    if gpu.info.name == PINNED.0 {
        assert_eq!(got, PINNED.1, "the fixture steps changed on {}", PINNED.0);
    } else {
        eprintln!("fixture steps not pinned for '{}' (pinned: '{}')", gpu.info.name, PINNED.0);
    }
}
