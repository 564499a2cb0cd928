use crate::common::*;
use swav_wgpu::ops::elementwise::{self, cpu};

const LENS: [usize; 5] = [1, 17 * 33, 256, 4 * 1025, 70_001];

#[test]
fn elementwise_kernels_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(30);
    for n in LENS {
        let a = rng.vec_f32(n);
        let b = rng.vec_f32(n);
        let (ta, tb) = (upload(&gpu, "a", &a), upload(&gpu, "b", &b));

        let y = nan_tensor(&gpu, "relu", n);
        run(&gpu, &[elementwise::relu_forward(&gpu, &ta, &y).unwrap()]);
        assert_close(&format!("relu {n}"), &read(&gpu, &y), &cpu::relu_forward(&a), GPU_TOL);

        let dx = nan_tensor(&gpu, "relu dx", n);
        run(&gpu, &[elementwise::relu_backward(&gpu, &ta, &tb, &dx).unwrap()]);
        assert_close(&format!("relu backward {n}"), &read(&gpu, &dx), &cpu::relu_backward(&a, &b), GPU_TOL);

        let c = nan_tensor(&gpu, "add", n);
        run(&gpu, &[elementwise::add(&gpu, &ta, &tb, &c, 1.5, -0.25).unwrap()]);
        assert_close(&format!("add {n}"), &read(&gpu, &c), &cpu::add(&a, &b, 1.5, -0.25), GPU_TOL);
        // The fused residual add + ReLU.
        let c = nan_tensor(&gpu, "c", n);
        run(&gpu, &[elementwise::add_relu(&gpu, &ta, &tb, &c, 1.5, -0.25).unwrap()]);
        let want = cpu::relu_forward(&cpu::add(&a, &b, 1.5, -0.25));
        assert_close(&format!("add_relu {n}"), &read(&gpu, &c), &want, GPU_TOL);

        let s = nan_tensor(&gpu, "scale", n);
        run(&gpu, &[elementwise::scale(&gpu, &ta, &s, -3.0).unwrap()]);
        assert_close(&format!("scale {n}"), &read(&gpu, &s), &cpu::scale(&a, -3.0), GPU_TOL);
    }
}

#[test]
fn elementwise_backward_rules_match_finite_differences() {
    let mut rng = Rng::new(31);
    for n in [1, 17 * 33, 256] {
        let a = rng.vec_away_from_zero(n);
        let b = rng.vec(n);
        let g = rng.vec(n);
        fd_check("relu", &a, &cpu::relu_backward(&a, &g), &g, cpu::relu_forward);
        let (da, db) = cpu::add_backward(&g, 1.5, -0.25);
        fd_check("add dA", &a, &da, &g, |v| cpu::add(v, &b, 1.5, -0.25));
        fd_check("add dB", &b, &db, &g, |v| cpu::add(&a, v, 1.5, -0.25));
        // scale's backward is scale by the same factor.
        fd_check("scale", &a, &cpu::scale(&g, -3.0), &g, |v| cpu::scale(v, -3.0));
    }
}

#[test]
fn relu_backward_and_scale_backward_on_gpu() {
    // The backward of scale is scale; of add, two scales: run them as the graph would.
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(32);
    let g = rng.vec_f32(1000);
    let tg = upload(&gpu, "g", &g);
    let da = nan_tensor(&gpu, "da", 1000);
    run(&gpu, &[elementwise::scale(&gpu, &tg, &da, 1.5).unwrap()]);
    assert_close("add backward (alpha)", &read(&gpu, &da), &cpu::add_backward(&g, 1.5, -0.25).0, GPU_TOL);
}

#[test]
fn elementwise_rejects_mismatched_lengths() {
    let Some(gpu) = gpu() else { return };
    let a = gpu.tensor_filled("a", &[5], 0.0).unwrap();
    let b = gpu.tensor_filled("b", &[6], 0.0).unwrap();
    assert!(elementwise::relu_forward(&gpu, &a, &b).is_err());
}

#[test]
fn fill_and_copy_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(33);
    for (n, src, dst, len) in [(17, 3, 5, 9), (70_001, 0, 1000, 69_001), (1, 0, 0, 1)] {
        let x = rng.vec_f32(n);
        let tx = upload(&gpu, "x", &x);
        let y = nan_tensor(&gpu, "y", n);
        run(&gpu, &[elementwise::fill(&gpu, &y, 0.5).unwrap()]);
        assert_close("fill", &read(&gpu, &y), &vec![0.5; n], GPU_TOL);
        run(&gpu, &[elementwise::copy(&gpu, &tx, &y, src, dst, len).unwrap()]);
        let mut want = vec![0.5; n];
        cpu::copy(&x, &mut want, src, dst, len);
        assert_close("copy", &read(&gpu, &y), &want, GPU_TOL);
    }
    let a = gpu.tensor_filled("a", &[4], 0.0).unwrap();
    assert!(elementwise::copy(&gpu, &a, &a, 2, 0, 3).is_err(), "out-of-range copy must be refused");
}
