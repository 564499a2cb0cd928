use crate::common::*;
use swav_wgpu::ops::reduce::{self, cpu, ReduceOp};

/// [outer, reduce, inner] cases: whole-tensor (multi-pass beyond 4096), per-row, per-column.
const SHAPES: [(usize, usize, usize); 5] = [(1, 100_003, 1), (7, 33, 1), (1, 17, 130), (3, 9000, 5), (1, 1, 1)];
const OPS: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Norm];

#[test]
fn reductions_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(50);
    for (o, r, i) in SHAPES {
        let x = rng.vec_f32(o * r * i);
        let tx = upload(&gpu, "x", &x);
        for op in OPS {
            let y = nan_tensor(&gpu, "y", o * i);
            run(&gpu, &reduce::reduce_axis(&gpu, &tx, &y, o, r, i, op).unwrap());
            assert_close(
                &format!("{op:?} [{o},{r},{i}]"),
                &read(&gpu, &y),
                &cpu::reduce_axis(&x, o, r, i, op),
                GPU_TOL,
            );
        }
    }
}

#[test]
fn reduction_backward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(51);
    for (o, r, i) in SHAPES {
        let x = rng.vec_f32(o * r * i);
        let dy = rng.vec_f32(o * i);
        let (tx, tdy) = (upload(&gpu, "x", &x), upload(&gpu, "dy", &dy));
        for op in OPS {
            let y = nan_tensor(&gpu, "y", o * i);
            let dx = nan_tensor(&gpu, "dx", x.len());
            let mut d = reduce::reduce_axis(&gpu, &tx, &y, o, r, i, op).unwrap();
            d.push(reduce::reduce_axis_backward(&gpu, &tx, &y, &tdy, &dx, o, r, i, op).unwrap());
            run(&gpu, &d);
            let want = cpu::reduce_axis_backward(&x, &dy, o, r, i, op);

            assert_close(&format!("d{op:?} [{o},{r},{i}]"), &read(&gpu, &dx), &want, GPU_TOL);
        }
    }
}

#[test]
fn reduction_backward_matches_finite_differences() {
    let mut rng = Rng::new(52);
    for (o, r, i) in [(7, 33, 1), (1, 17, 13), (2, 300, 3)] {
        let x = rng.vec(o * r * i);
        let g = rng.vec(o * i);
        for op in OPS {
            let dx = cpu::reduce_axis_backward(&x, &g, o, r, i, op);
            fd_check(&format!("{op:?}"), &x, &dx, &g, |v| cpu::reduce_axis(v, o, r, i, op));
        }
    }
}
