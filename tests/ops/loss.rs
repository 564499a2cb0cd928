use crate::common::*;
use swav_wgpu::ops::loss::{self, cpu};

const SHAPES: [(usize, usize); 4] = [(17, 33), (8, 3000), (1, 1), (130, 100)];
const SCALE: f64 = 10.0;

/// Soft targets: non-negative rows that sum to 1 (like Sinkhorn codes), except the last row
/// which sums to 0.5 so the sum(Q) term of the gradient is exercised.
fn targets(rng: &mut Rng, r: usize, c: usize) -> Vec<f64> {
    let mut q: Vec<f64> = (0..r * c).map(|_| rng.signed().abs() as f32 as f64).collect();
    for (i, row) in q.chunks_mut(c).enumerate() {
        let s: f64 = row.iter().sum::<f64>().max(1e-9);
        let target = if i + 1 == r && r > 1 { 0.5 } else { 1.0 };
        row.iter_mut().for_each(|v| *v = (*v / s * target) as f32 as f64);
    }
    q
}

#[test]
fn cross_entropy_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(70);
    for (r, c) in SHAPES {
        let x = rng.vec_f32(r * c);
        let q = targets(&mut rng, r, c);
        let dl = rng.vec_f32(r);
        let (tx, tq, tdl) = (upload(&gpu, "x", &x), upload(&gpu, "q", &q), upload(&gpu, "dl", &dl));
        let l = nan_tensor(&gpu, "loss", r);
        let dx = nan_tensor(&gpu, "dx", r * c);
        let s = SCALE as f32;
        run(
            &gpu,
            &[
                loss::cross_entropy_forward(&gpu, &tx, &tq, &l, r, c, s).unwrap(),
                loss::cross_entropy_backward(&gpu, &tx, &tq, &tdl, &dx, r, c, s).unwrap(),
            ],
        );
        assert_close(&format!("ce [{r},{c}]"), &read(&gpu, &l), &cpu::cross_entropy_forward(&x, &q, c, SCALE), GPU_TOL);
        assert_close(
            &format!("ce dx [{r},{c}]"),
            &read(&gpu, &dx),
            &cpu::cross_entropy_backward(&x, &q, &dl, c, SCALE),
            GPU_TOL,
        );
    }
}

#[test]
fn cross_entropy_backward_matches_finite_differences() {
    let mut rng = Rng::new(71);
    for (r, c) in [(17, 33), (3, 300), (1, 1)] {
        let x = rng.vec(r * c);
        let q = targets(&mut rng, r, c);
        let g = rng.vec(r);
        fd_check("cross entropy", &x, &cpu::cross_entropy_backward(&x, &q, &g, c, SCALE), &g, |v| {
            cpu::cross_entropy_forward(v, &q, c, SCALE)
        });
    }
}
