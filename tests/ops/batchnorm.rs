use crate::common::*;
use swav_wgpu::gpu::Tensor;
use swav_wgpu::ops::batchnorm::{self, cpu, BatchNormBackwardTensors, BatchNormShape, BatchNormTensors};

/// 4-D (per channel over N*H*W) and 2-D (BatchNorm1d, spatial 1) cases, odd sizes included.
fn shapes() -> Vec<BatchNormShape> {
    vec![
        BatchNormShape::new(4, 3, 17 * 5),
        BatchNormShape::new(3, 7, 9),
        BatchNormShape::new(3, 5, 16),
        BatchNormShape::new(2, 5, 100 * 11),
        BatchNormShape::new(8, 33, 1),
        BatchNormShape::new(130, 4, 1),
    ]
}

struct Inputs {
    x: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    run_mean: Vec<f64>,
    run_var: Vec<f64>,
}

fn inputs(rng: &mut Rng, s: &BatchNormShape) -> Inputs {
    // An offset and scale per call, so mean and variance are far from 0 and 1.
    let x = rng.vec_f32(s.len()).iter().map(|v| ((v * 3.0 + 0.7) as f32) as f64).collect();
    Inputs {
        x,
        gamma: rng.vec_f32(s.channels),
        beta: rng.vec_f32(s.channels),
        run_mean: rng.vec_f32(s.channels),
        run_var: rng.vec_f32(s.channels).iter().map(|v| v.abs() + 0.5).collect(),
    }
}

fn bn<'a>(
    x: &'a Tensor,
    gamma: &'a Tensor,
    beta: &'a Tensor,
    running_mean: &'a Tensor,
    running_var: &'a Tensor,
    y: &'a Tensor,
) -> BatchNormTensors<&'a Tensor> {
    BatchNormTensors { x, gamma, beta, running_mean, running_var, y }
}

#[allow(clippy::too_many_arguments)]
fn bn_backward<'a>(
    x: &'a Tensor,
    dy: &'a Tensor,
    relu_mask: Option<&'a Tensor>,
    mean: &'a Tensor,
    var: &'a Tensor,
    gamma: &'a Tensor,
    dgamma: &'a Tensor,
    dbeta: &'a Tensor,
    dx: &'a Tensor,
) -> BatchNormBackwardTensors<&'a Tensor> {
    BatchNormBackwardTensors { x, dy, relu_mask, mean, var, gamma, dgamma, dbeta, dx }
}

/// Each shape plain and with the ReLU the plan fuses into the apply pass.
fn with_fused_relu(shapes: Vec<BatchNormShape>) -> Vec<BatchNormShape> {
    shapes.into_iter().flat_map(|s| [s, BatchNormShape { relu: true, ..s }]).collect()
}

#[test]
fn batchnorm_train_forward_and_running_stats_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(20);
    for s in with_fused_relu(shapes()) {
        let i = inputs(&mut rng, &s);
        let (want_y, want_mean, want_var) = cpu::forward_train(&i.x, &i.gamma, &i.beta, &s);
        let (want_rm, want_rv) = cpu::update_running(&i.run_mean, &i.run_var, &want_mean, &want_var, &s);
        let x = upload(&gpu, "x", &i.x);
        let (gamma, beta) = (upload(&gpu, "gamma", &i.gamma), upload(&gpu, "beta", &i.beta));
        let (rm, rv) = (upload(&gpu, "rm", &i.run_mean), upload(&gpu, "rv", &i.run_var));
        let mean = nan_tensor(&gpu, "mean", s.channels);
        let var = nan_tensor(&gpu, "var", s.channels);
        let y = nan_tensor(&gpu, "y", s.len());
        run(
            &gpu,
            &batchnorm::forward_train(&gpu, &bn(&x, &gamma, &beta, &rm, &rv, &y), (&mean, &var), s, true).unwrap(),
        );
        assert_close(&format!("bn y {s:?}"), &read(&gpu, &y), &want_y, GPU_TOL);
        assert_close(&format!("bn mean {s:?}"), &read(&gpu, &mean), &want_mean, GPU_TOL);
        assert_close(&format!("bn var {s:?}"), &read(&gpu, &var), &want_var, GPU_TOL);
        assert_close(&format!("bn running mean {s:?}"), &read(&gpu, &rm), &want_rm, GPU_TOL);
        assert_close(&format!("bn running var {s:?}"), &read(&gpu, &rv), &want_rv, GPU_TOL);
    }
}

#[test]
fn batchnorm_eval_forward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(21);
    for s in with_fused_relu(shapes()) {
        let i = inputs(&mut rng, &s);
        let want = cpu::apply(&i.x, &i.run_mean, &i.run_var, &i.gamma, &i.beta, &s);
        let x = upload(&gpu, "x", &i.x);
        let (gamma, beta) = (upload(&gpu, "gamma", &i.gamma), upload(&gpu, "beta", &i.beta));
        let (rm, rv) = (upload(&gpu, "rm", &i.run_mean), upload(&gpu, "rv", &i.run_var));
        let y = nan_tensor(&gpu, "y", s.len());
        run(&gpu, &[batchnorm::forward_eval(&gpu, &bn(&x, &gamma, &beta, &rm, &rv, &y), s).unwrap()]);
        assert_close(&format!("bn eval y {s:?}"), &read(&gpu, &y), &want, GPU_TOL);
    }
}

#[test]
fn batchnorm_backward_matches_cpu_in_train_and_eval() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(22);
    for s in shapes() {
        for training in [true, false] {
            let i = inputs(&mut rng, &s);
            let dy = rng.vec_f32(s.len());
            let (mean, var) =
                if training { cpu::batch_stats(&i.x, &s) } else { (i.run_mean.clone(), i.run_var.clone()) };
            let mean: Vec<f64> = mean.iter().map(|&v| v as f32 as f64).collect();
            let var: Vec<f64> = var.iter().map(|&v| v as f32 as f64).collect();
            let (want_dx, want_dg, want_db) = cpu::backward(&i.x, &dy, &mean, &var, &i.gamma, &s, training);
            let (x, tdy) = (upload(&gpu, "x", &i.x), upload(&gpu, "dy", &dy));
            let (tmean, tvar, gamma) =
                (upload(&gpu, "mean", &mean), upload(&gpu, "var", &var), upload(&gpu, "gamma", &i.gamma));
            let dg = nan_tensor(&gpu, "dgamma", s.channels);
            let db = nan_tensor(&gpu, "dbeta", s.channels);
            let dx = nan_tensor(&gpu, "dx", s.len());
            run(
                &gpu,
                &batchnorm::backward(
                    &gpu,
                    &bn_backward(&x, &tdy, None, &tmean, &tvar, &gamma, &dg, &db, &dx),
                    s,
                    training,
                )
                .unwrap(),
            );
            let what = format!("{s:?} training={training}");
            assert_close(&format!("bn dx {what}"), &read(&gpu, &dx), &want_dx, GPU_TOL);
            assert_close(&format!("bn dgamma {what}"), &read(&gpu, &dg), &want_dg, GPU_TOL);
            assert_close(&format!("bn dbeta {what}"), &read(&gpu, &db), &want_db, GPU_TOL);
        }
    }
}

/// The plan's fused ReLU-backward: dy is the gradient of relu(Y) (the mask), masked as it is
/// read, and the masked gradient is left in dy (in place) for the dX pass.
#[test]
fn batchnorm_backward_with_fused_relu_mask_matches_cpu() {
    use swav_wgpu::ops::elementwise::cpu::{relu_backward, relu_forward};
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(24);
    for s in shapes() {
        for training in [true, false] {
            let i = inputs(&mut rng, &s);
            let mask = relu_forward(&rng.vec_f32(s.len()));
            let dz = rng.vec_f32(s.len());
            let dy = relu_backward(&mask, &dz);
            let (mean, var) =
                if training { cpu::batch_stats(&i.x, &s) } else { (i.run_mean.clone(), i.run_var.clone()) };
            let mean: Vec<f64> = mean.iter().map(|&v| v as f32 as f64).collect();
            let var: Vec<f64> = var.iter().map(|&v| v as f32 as f64).collect();
            let (want_dx, want_dg, want_db) = cpu::backward(&i.x, &dy, &mean, &var, &i.gamma, &s, training);
            let (x, tdz, tmask) = (upload(&gpu, "x", &i.x), upload(&gpu, "dz", &dz), upload(&gpu, "mask", &mask));
            let (tmean, tvar, gamma) =
                (upload(&gpu, "mean", &mean), upload(&gpu, "var", &var), upload(&gpu, "gamma", &i.gamma));
            let dg = nan_tensor(&gpu, "dgamma", s.channels);
            let db = nan_tensor(&gpu, "dbeta", s.channels);
            let dx = nan_tensor(&gpu, "dx", s.len());
            let d = batchnorm::backward(
                &gpu,
                &bn_backward(&x, &tdz, Some(&tmask), &tmean, &tvar, &gamma, &dg, &db, &dx),
                s,
                training,
            );
            run(&gpu, &d.unwrap());
            let what = format!("{s:?} training={training} relu mask");
            assert_close(&format!("bn dx {what}"), &read(&gpu, &dx), &want_dx, GPU_TOL);
            assert_close(&format!("bn dgamma {what}"), &read(&gpu, &dg), &want_dg, GPU_TOL);
            assert_close(&format!("bn dbeta {what}"), &read(&gpu, &db), &want_db, GPU_TOL);
            assert_eq!(read(&gpu, &tdz), dy, "the masked gradient, in place: {what}");
        }
    }
}

#[test]
fn batchnorm_backward_matches_finite_differences() {
    let mut rng = Rng::new(23);
    for s in shapes() {
        let i = inputs(&mut rng, &s);
        let g = rng.vec(s.len());
        // Training: the batch statistics depend on X.
        let (_, mean, var) = cpu::forward_train(&i.x, &i.gamma, &i.beta, &s);
        let (dx, dgamma, dbeta) = cpu::backward(&i.x, &g, &mean, &var, &i.gamma, &s, true);
        fd_check(&format!("bn dx {s:?}"), &i.x, &dx, &g, |v| cpu::forward_train(v, &i.gamma, &i.beta, &s).0);
        fd_check(&format!("bn dgamma {s:?}"), &i.gamma, &dgamma, &g, |v| cpu::forward_train(&i.x, v, &i.beta, &s).0);
        fd_check(&format!("bn dbeta {s:?}"), &i.beta, &dbeta, &g, |v| cpu::forward_train(&i.x, &i.gamma, v, &s).0);
        // Eval: running statistics are constants.
        let (dx, _, _) = cpu::backward(&i.x, &g, &i.run_mean, &i.run_var, &i.gamma, &s, false);
        fd_check(&format!("bn eval dx {s:?}"), &i.x, &dx, &g, |v| {
            cpu::apply(v, &i.run_mean, &i.run_var, &i.gamma, &i.beta, &s)
        });
    }
}

#[test]
fn batchnorm_training_rejects_a_single_value_per_channel() {
    let Some(gpu) = gpu() else { return };
    let s = BatchNormShape::new(1, 4, 1);
    let t = gpu.tensor_filled("t", &[4], 0.0).unwrap();
    let err = batchnorm::forward_train(&gpu, &bn(&t, &t, &t, &t, &t, &t), (&t, &t), s, true).unwrap_err();
    assert!(err.to_string().contains("more than one value per channel"), "{err}");
}

/// Every batch-norm kernel over f16 activations (x, y, dy, dx and the fused ReLU's mask stored
/// as f16; statistics, gamma, beta and their gradients f32), both vector widths, training and
/// eval, with and without the fused ReLU: against the CPU reference on the same f16 inputs,
/// rounded to f16 where the kernel stores (one f16 spacing); the f32 outputs within GPU_TOL.
#[test]
fn batchnorm_f16_kernels_match_cpu() {
    use swav_wgpu::ops::elementwise::cpu::{relu_backward, relu_forward, round_to_f16 as round};
    let Some(gpu) = f16_gpu("batchnorm_f16_kernels_match_cpu") else { return };
    let mut rng = Rng::new(25);
    for s in with_fused_relu(shapes()) {
        let i = inputs(&mut rng, &s);
        let (x, xv) = upload_f16(&gpu, "x", &i.x);
        let (gamma, beta) = (upload(&gpu, "gamma", &i.gamma), upload(&gpu, "beta", &i.beta));
        let (rm, rv) = (upload(&gpu, "rm", &i.run_mean), upload(&gpu, "rv", &i.run_var));
        // Training forward: statistics of the f16 inputs in f32, y stored as f16.
        let (want_y, want_mean, want_var) = cpu::forward_train(&xv, &i.gamma, &i.beta, &s);
        let want_y = round(&if s.relu { relu_forward(&want_y) } else { want_y });
        let (mean, var, y) = (
            nan_tensor(&gpu, "mean", s.channels),
            nan_tensor(&gpu, "var", s.channels),
            nan_tensor_f16(&gpu, "y", s.len()),
        );
        let d = batchnorm::forward_train(&gpu, &bn(&x, &gamma, &beta, &rm, &rv, &y), (&mean, &var), s, false);
        run(&gpu, &d.unwrap());
        assert_f16_close(&format!("f16 bn y {s:?}"), &read_f16(&gpu, &y), &want_y);
        assert_close(&format!("f16 bn mean {s:?}"), &read(&gpu, &mean), &want_mean, GPU_TOL);
        assert_close(&format!("f16 bn var {s:?}"), &read(&gpu, &var), &want_var, GPU_TOL);
        // Eval forward.
        let want = cpu::apply(&xv, &i.run_mean, &i.run_var, &i.gamma, &i.beta, &s);
        let want = round(&if s.relu { relu_forward(&want) } else { want });
        let y = nan_tensor_f16(&gpu, "y", s.len());
        run(&gpu, &[batchnorm::forward_eval(&gpu, &bn(&x, &gamma, &beta, &rm, &rv, &y), s).unwrap()]);
        assert_f16_close(&format!("f16 bn eval y {s:?}"), &read_f16(&gpu, &y), &want);
        // Backward, training and eval; `s.relu` runs the fused mask.
        for training in [true, false] {
            let (mean, var) =
                if training { cpu::batch_stats(&xv, &s) } else { (i.run_mean.clone(), i.run_var.clone()) };
            let (mean, var): (Vec<f64>, Vec<f64>) =
                (f32s(&mean).iter().map(|&v| v as f64).collect(), f32s(&var).iter().map(|&v| v as f64).collect());
            let (tdz, dz) = upload_f16(&gpu, "dz", &rng.vec_f32(s.len()));
            let (tmask, mask) = upload_f16(&gpu, "mask", &relu_forward(&rng.vec_f32(s.len())));
            let dy = if s.relu { relu_backward(&mask, &dz) } else { dz.clone() };
            let (want_dx, want_dg, want_db) = cpu::backward(&xv, &dy, &mean, &var, &i.gamma, &s, training);
            let (tmean, tvar) = (upload(&gpu, "mean", &mean), upload(&gpu, "var", &var));
            let (dg, db, dx) = (
                nan_tensor(&gpu, "dg", s.channels),
                nan_tensor(&gpu, "db", s.channels),
                nan_tensor_f16(&gpu, "dx", s.len()),
            );
            let mask_arg = s.relu.then_some(&tmask);
            let t = bn_backward(&x, &tdz, mask_arg, &tmean, &tvar, &gamma, &dg, &db, &dx);
            run(&gpu, &batchnorm::backward(&gpu, &t, s, training).unwrap());
            let what = format!("{s:?} training={training}");
            assert_f16_close(&format!("f16 bn dx {what}"), &read_f16(&gpu, &dx), &round(&want_dx));
            assert_close(&format!("f16 bn dgamma {what}"), &read(&gpu, &dg), &want_dg, GPU_TOL);
            assert_close(&format!("f16 bn dbeta {what}"), &read(&gpu, &db), &want_db, GPU_TOL);
            if s.relu {
                assert_eq!(read_f16(&gpu, &tdz), dy, "the masked f16 gradient, in place: {what}");
            }
        }
    }
}
