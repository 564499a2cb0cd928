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

/// Max-pool over f16 activations (x, y, dy, dx f16; the arg-max u32): the maximum of f16
/// values is one of them, so y is exact; dx sums f16 values in f32 and rounds once.
#[test]
fn max_pool_f16_matches_cpu() {
    use swav_wgpu::ops::elementwise::cpu::round_to_f16;
    let Some(gpu) = f16_gpu("max_pool_f16_matches_cpu") else { return };
    let mut rng = Rng::new(41);
    for s in shapes() {
        let (tx, x) = upload_f16(&gpu, "x", &rng.vec_f32(s.planes * s.h * s.w));
        let (tdy, dy) = upload_f16(&gpu, "dy", &rng.vec_f32(s.output_len()));
        let (want_y, arg) = cpu::max_pool_forward(&x, s);
        let want_dx = round_to_f16(&cpu::max_pool_backward(&dy, &arg, s));
        let y = nan_tensor_f16(&gpu, "y", s.output_len());
        let argmax = nan_tensor(&gpu, "argmax", s.output_len());
        let dx = nan_tensor_f16(&gpu, "dx", x.len());
        run(
            &gpu,
            &[
                pool::max_pool_forward(&gpu, &tx, &y, &argmax, s).unwrap(),
                pool::max_pool_backward(&gpu, &tdy, &argmax, &dx, s).unwrap(),
            ],
        );
        assert_eq!(read_f16(&gpu, &y), want_y, "f16 max pool {s:?}");
        let got_arg: Vec<usize> = gpu.read_blocking(&argmax).unwrap().iter().map(|v| v.to_bits() as usize).collect();
        assert_eq!(got_arg, arg, "f16 argmax {s:?}");
        assert_f16_close(&format!("f16 max pool dx {s:?}"), &read_f16(&gpu, &dx), &want_dx);
    }
}
