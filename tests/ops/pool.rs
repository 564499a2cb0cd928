use crate::common::*;
use swav_wgpu::ops::pool::{self, cpu, PoolShape};

fn shapes() -> Vec<PoolShape> {
    vec![
        PoolShape::square(6, 16, 3, 2, 1), // ResNet stem
        PoolShape::square(5, 17, 3, 2, 1), // odd size
        PoolShape::square(3, 9, 2, 2, 0),
        PoolShape { planes: 2, h: 11, w: 7, kh: 3, kw: 2, stride: (1, 2), pad: (1, 1) },
    ]
}

#[test]
fn max_pool_forward_and_backward_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(40);
    for s in shapes() {
        let x = rng.vec_f32(s.planes * s.h * s.w);
        let dy = rng.vec_f32(s.output_len());
        let (want_y, arg) = cpu::max_pool_forward(&x, s);
        let want_dx = cpu::max_pool_backward(&dy, &arg, s);
        let (tx, tdy) = (upload(&gpu, "x", &x), upload(&gpu, "dy", &dy));
        let y = nan_tensor(&gpu, "y", s.output_len());
        let argmax = nan_tensor(&gpu, "argmax", s.output_len());
        let dx = nan_tensor(&gpu, "dx", x.len());
        run(
            &gpu,
            &[
                pool::max_pool_forward(&gpu, &tx, &y, &argmax, s).unwrap(),
                pool::max_pool_backward(&gpu, &tdy, &argmax, &dx, s).unwrap(),
            ],
        );
        assert_close(&format!("max pool {s:?}"), &read(&gpu, &y), &want_y, GPU_TOL);
        let got_arg: Vec<usize> = gpu.read_blocking(&argmax).unwrap().iter().map(|v| v.to_bits() as usize).collect();
        assert_eq!(got_arg, arg, "argmax {s:?}");
        assert_close(&format!("max pool dx {s:?}"), &read(&gpu, &dx), &want_dx, GPU_TOL);
    }
}

#[test]
fn global_avg_pool_forward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(41);
    for (planes, hw) in [(6, 16), (5, 17 * 3), (3, 10_000), (130, 1)] {
        let x = rng.vec_f32(planes * hw);
        let tx = upload(&gpu, "x", &x);
        let y = nan_tensor(&gpu, "y", planes);
        run(&gpu, &pool::global_avg_pool_forward(&gpu, &tx, &y, planes, hw).unwrap());
        assert_close("avg pool", &read(&gpu, &y), &cpu::global_avg_pool_forward(&x, planes, hw), GPU_TOL);
    }
}

#[test]
fn pool_backward_matches_finite_differences() {
    let mut rng = Rng::new(42);
    for s in shapes() {
        let x = rng.vec(s.planes * s.h * s.w);
        let g = rng.vec(s.output_len());
        let (_, arg) = cpu::max_pool_forward(&x, s);
        fd_check(&format!("max pool {s:?}"), &x, &cpu::max_pool_backward(&g, &arg, s), &g, |v| {
            cpu::max_pool_forward(v, s).0
        });
    }
}
