use crate::common::*;
use swav_wgpu::ops::rows::{self, cpu};

/// [rows, cols]: SwAV-like (K 3000 prototypes), ragged, a single element, long rows.
const SHAPES: [(usize, usize); 4] = [(17, 33), (8, 3000), (1, 5), (130, 65)];
const SCALE: f64 = 10.0; // 1 / tau, tau = 0.1

#[test]
fn row_kernels_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(60);
    for (r, c) in SHAPES {
        let x = rng.vec_f32(r * c);
        let dy = rng.vec_f32(r * c);
        let (tx, tdy) = (upload(&gpu, "x", &x), upload(&gpu, "dy", &dy));
        let n = r * c;
        let what = format!("[{r},{c}]");

        let y = nan_tensor(&gpu, "y", n);
        let dx = nan_tensor(&gpu, "dx", n);
        run(
            &gpu,
            &[
                rows::l2_normalize_forward(&gpu, &tx, &y, r, c).unwrap(),
                rows::l2_normalize_backward(&gpu, &tx, &tdy, &dx, r, c).unwrap(),
            ],
        );
        assert_close(&format!("l2 {what}"), &read(&gpu, &y), &cpu::l2_normalize_forward(&x, c), GPU_TOL);
        assert_close(&format!("l2 dx {what}"), &read(&gpu, &dx), &cpu::l2_normalize_backward(&x, &dy, c), GPU_TOL);

        for (name, fwd, bwd) in [
            (
                "softmax",
                cpu::softmax_forward as fn(&[f64], usize, f64) -> Vec<f64>,
                cpu::softmax_backward as fn(&[f64], &[f64], usize, f64) -> Vec<f64>,
            ),
            ("log_softmax", cpu::log_softmax_forward, cpu::log_softmax_backward),
        ] {
            let y = nan_tensor(&gpu, "y", n);
            let dx = nan_tensor(&gpu, "dx", n);
            let s = SCALE as f32;
            let d = if name == "softmax" {
                [
                    rows::softmax_forward(&gpu, &tx, &y, r, c, s).unwrap(),
                    rows::softmax_backward(&gpu, &y, &tdy, &dx, r, c, s).unwrap(),
                ]
            } else {
                [
                    rows::log_softmax_forward(&gpu, &tx, &y, r, c, s).unwrap(),
                    rows::log_softmax_backward(&gpu, &y, &tdy, &dx, r, c, s).unwrap(),
                ]
            };
            run(&gpu, &d);
            let want_y = fwd(&x, c, SCALE);
            assert_close(&format!("{name} {what}"), &read(&gpu, &y), &want_y, GPU_TOL);
            assert_close(&format!("{name} dx {what}"), &read(&gpu, &dx), &bwd(&want_y, &dy, c, SCALE), GPU_TOL);
        }
    }
}

#[test]
fn row_backward_rules_match_finite_differences() {
    let mut rng = Rng::new(61);
    for (r, c) in [(17, 33), (3, 300), (1, 1), (5, 2)] {
        let x = rng.vec(r * c);
        let g = rng.vec(r * c);
        fd_check("l2", &x, &cpu::l2_normalize_backward(&x, &g, c), &g, |v| cpu::l2_normalize_forward(v, c));
        let y = cpu::softmax_forward(&x, c, SCALE);
        fd_check("softmax", &x, &cpu::softmax_backward(&y, &g, c, SCALE), &g, |v| cpu::softmax_forward(v, c, SCALE));
        let y = cpu::log_softmax_forward(&x, c, SCALE);
        fd_check("log_softmax", &x, &cpu::log_softmax_backward(&y, &g, c, SCALE), &g, |v| {
            cpu::log_softmax_forward(v, c, SCALE)
        });
    }
}
