use crate::common::*;
use swav_wgpu::ops::matmul::{self, cpu, GemmVariant, MatmulShape};

// (64, 64, 64) and (17, 36, 20) take the dense vec4 kernels (K and N multiples of 4), ragged M in the second.
const SHAPES: [(usize, usize, usize); 6] =
    [(17, 33, 9), (64, 64, 64), (17, 36, 20), (5, 130, 67), (1, 1, 1), (3, 5, 20000)];

fn shapes() -> Vec<MatmulShape> {
    let mut v = Vec::new();
    for (m, n, k) in SHAPES {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                v.push(MatmulShape { m, n, k, trans_a, trans_b });
            }
        }
    }
    v
}

#[test]
fn matmul_forward_matches_cpu_for_every_variant() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(1);
    for variant in gemm_variants(&gpu) {
        for s in shapes() {
            let a = rng.vec_f32(s.m * s.k);
            let b = rng.vec_f32(s.k * s.n);
            let bias = rng.vec_f32(s.n);
            for with_bias in [false, true] {
                let want = cpu::matmul(&a, &b, with_bias.then_some(&bias[..]), s);
                let (ta, tb, tbias) = (upload(&gpu, "a", &a), upload(&gpu, "b", &b), upload(&gpu, "bias", &bias));
                let c = nan_tensor(&gpu, "c", s.m * s.n);
                let d = matmul::matmul(&gpu, &ta, &tb, with_bias.then_some(&tbias), &c, s, variant).unwrap();
                run(&gpu, &d);
                assert_close(&format!("matmul {variant:?} {s:?} bias={with_bias}"), &read(&gpu, &c), &want, GPU_TOL);
            }
        }
    }
}

#[test]
fn matmul_backward_matches_cpu_for_every_variant() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(2);
    for variant in gemm_variants(&gpu) {
        for s in shapes() {
            let a = rng.vec_f32(s.m * s.k);
            let b = rng.vec_f32(s.k * s.n);
            let dc = rng.vec_f32(s.m * s.n);
            let (want_da, want_db, want_dbias) = cpu::matmul_backward(&a, &b, &dc, s);
            let (ta, tb, tdc) = (upload(&gpu, "a", &a), upload(&gpu, "b", &b), upload(&gpu, "dc", &dc));
            let da = nan_tensor(&gpu, "da", a.len());
            let db = nan_tensor(&gpu, "db", b.len());
            let dbias = nan_tensor(&gpu, "dbias", s.n);
            let d =
                matmul::matmul_backward(&gpu, &ta, &tb, &tdc, Some(&da), Some(&db), Some(&dbias), s, variant).unwrap();
            run(&gpu, &d);
            let what = format!("{variant:?} {s:?}");
            assert_close(&format!("dA {what}"), &read(&gpu, &da), &want_da, GPU_TOL);
            assert_close(&format!("dB {what}"), &read(&gpu, &db), &want_db, GPU_TOL);
            assert_close(&format!("dbias {what}"), &read(&gpu, &dbias), &want_dbias, GPU_TOL);
        }
    }
}

#[test]
fn matmul_backward_matches_finite_differences() {
    let mut rng = Rng::new(3);
    for s in shapes() {
        let a = rng.vec(s.m * s.k);
        let b = rng.vec(s.k * s.n);
        let bias = rng.vec(s.n);
        let w = rng.vec(s.m * s.n); // L = <C, w>, so dC = w
        let (da, db, dbias) = cpu::matmul_backward(&a, &b, &w, s);
        fd_check(&format!("dA {s:?}"), &a, &da, &w, |x| cpu::matmul(x, &b, Some(&bias), s));
        fd_check(&format!("dB {s:?}"), &b, &db, &w, |x| cpu::matmul(&a, x, Some(&bias), s));
        fd_check(&format!("dbias {s:?}"), &bias, &dbias, &w, |x| cpu::matmul(&a, &b, Some(x), s));
    }
}

#[test]
fn matmul_rejects_wrong_sizes() {
    let Some(gpu) = gpu() else { return };
    let a = gpu.tensor_filled("a", &[6], 0.0).unwrap();
    let c = gpu.tensor_filled("c", &[4], 0.0).unwrap();
    let s = MatmulShape { m: 2, n: 2, k: 4, trans_a: false, trans_b: false };
    let err = matmul::matmul(&gpu, &a, &a, None, &c, s, GemmVariant::WORKGROUP_DEFAULT).unwrap_err();
    assert!(err.to_string().contains("A has 6 elements"), "{err}");
}
