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

/// Every per-element kernel over f16 activations, both vector widths (the lengths include
/// multiples of 4 and ragged ones): computed in f32 from the f16 inputs, stored as f16.
#[test]
fn elementwise_f16_kernels_match_cpu() {
    use cpu::round_to_f16 as round;
    let Some(gpu) = f16_gpu("elementwise_f16_kernels_match_cpu") else { return };
    let mut rng = Rng::new(35);
    for n in LENS {
        let (ta, a) = upload_f16(&gpu, "a", &rng.vec_f32(n));
        let (tb, b) = upload_f16(&gpu, "b", &rng.vec_f32(n));
        let check = |what: &str, d: swav_wgpu::gpu::Dispatch, out: &swav_wgpu::gpu::Tensor, want: &[f64]| {
            run(&gpu, &[d]);
            assert_f16_close(&format!("f16 {what} {n}"), &read_f16(&gpu, out), want);
        };
        let y = nan_tensor_f16(&gpu, "y", n);
        check("relu", elementwise::relu_forward(&gpu, &ta, &y).unwrap(), &y, &cpu::relu_forward(&a));
        check(
            "relu backward",
            elementwise::relu_backward(&gpu, &ta, &tb, &y).unwrap(),
            &y,
            &cpu::relu_backward(&a, &b),
        );
        let want = round(&cpu::add(&a, &b, 1.5, -0.25));
        check("add", elementwise::add(&gpu, &ta, &tb, &y, 1.5, -0.25).unwrap(), &y, &want);
        let want = cpu::relu_forward(&want);
        check("add_relu", elementwise::add_relu(&gpu, &ta, &tb, &y, 1.5, -0.25).unwrap(), &y, &want);
        check("scale", elementwise::scale(&gpu, &ta, &y, -3.0).unwrap(), &y, &round(&cpu::scale(&a, -3.0)));
        check("fill", elementwise::fill(&gpu, &y, 0.1).unwrap(), &y, &round(&vec![0.1; n]));
        // Operands of different element types are refused.
        let wide = nan_tensor(&gpu, "wide", n);
        let err = elementwise::add(&gpu, &ta, &wide, &y, 1.0, 1.0).unwrap_err().to_string();
        assert!(err.contains("holds f32, the kernel reads f16"), "{err}");
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

/// f32 -> f16 -> f32 on the GPU against the CPU reference: values f16 holds exactly come back
/// exactly; others round to one of their two f16 neighbours (Vulkan lets a driver round to
/// nearest even or toward zero: tolerance one f16 spacing); beyond the f16 range (2^16 and
/// up) they become infinity, and between the largest f16 (65504) and 2^16 infinity or 65504.
#[test]
fn casts_between_f32_and_f16_round_trip_to_a_neighbouring_f16() {
    use swav_wgpu::gpu::DType;
    let Some(gpu) = gpu() else { return };
    if !gpu.f16 {
        // lavapipe and every CI adapter have shader-f16; an adapter without it is refused.
        assert!(!in_ci(), "the CI adapter must have shader-f16");
        eprintln!("SKIPPING the f16 cast test: {} has no shader-f16", gpu.info.name);
        return;
    }
    let mut rng = Rng::new(33);
    for n in LENS {
        for scale in [1e-6, 1.0, 3e3, 6.6e4] {
            let mut x: Vec<f64> = rng.vec_f32(n).iter().map(|v| (v * scale) as f32 as f64).collect();
            x[0] = 0.5; // exact in f16
            let tx = upload(&gpu, "x", &x);
            let half = gpu.tensor_of("x as f16", &[n], DType::F16).unwrap();
            let back = nan_tensor(&gpu, "back", n);
            run(&gpu, &[elementwise::cast(&gpu, &tx, &half).unwrap(), elementwise::cast(&gpu, &half, &back).unwrap()]);
            let got = read(&gpu, &back);
            let nearest = cpu::round_to_f16(&x);
            for i in 0..n {
                let (x, g, r) = (x[i], got[i], nearest[i]);
                let ok = if x.abs() >= 65536.0 {
                    g.is_infinite() && g.signum() == x.signum()
                } else if x.abs() > 65504.0 {
                    (g.is_infinite() || g.abs() == 65504.0) && g.signum() == x.signum()
                } else if r == x {
                    g == x
                } else {
                    (g - x).abs() < f16_spacing(x)
                };
                assert!(ok, "cast {n} x{scale}: element {i}: {x} came back as {g} (nearest f16 {r})");
            }
        }
    }
}

/// The cast ops in a graph: recorded by the family's builder, its gradient is the cast back
/// (f16 gradients); the plan against the CPU interpreter (which rounds to f16 at the same
/// points), within one f16 spacing where a gradient is rounded.
#[test]
fn cast_ops_in_a_graph_match_the_interpreter_and_cast_their_gradient_back() {
    use swav_wgpu::gpu::DType;
    use swav_wgpu::graph::{cpu as interpreter, plan::Plan, Graph};
    use swav_wgpu::ops::elementwise::ElementwiseOps;
    let Some(gpu) = gpu() else { return };
    if !gpu.f16 {
        assert!(!in_ci(), "the CI adapter must have shader-f16");
        return;
    }
    let mut g = Graph::new();
    let x = g.input_with_grad("x", &[5, 37]).unwrap();
    let h = ElementwiseOps::cast(&mut g, x, DType::F16).unwrap();
    assert_eq!(g.info(h).dtype, DType::F16);
    assert!(ElementwiseOps::cast(&mut g, h, DType::F16).is_err(), "f16 -> f16 is not a cast");
    let y = ElementwiseOps::cast(&mut g, h, DType::F32).unwrap();
    let s = g.log_softmax(y, 2.0).unwrap();
    let loss = g.mean(s).unwrap();
    g.keep(loss, "loss");
    g.backward(loss).unwrap();
    let dx = g.grads[&x];
    let dh = g.grad_of[&h];
    assert_eq!((g.info(dh).dtype, g.info(dx).dtype), (DType::F16, DType::F32), "gradients stored like their tensors");

    let mut rng = Rng::new(34);
    // Inputs f16 holds exactly, so the forward casts are exact on any driver.
    let xv: Vec<f64> = rng.vec_f32(5 * 37).iter().map(|v| (v * 256.0).round() / 256.0).collect();
    let mut values = interpreter::Values::new();
    values.insert(x, xv.clone());
    interpreter::run(&g, &mut values).unwrap();
    let plan = Plan::compile(&g, gpu).unwrap();
    plan.write(x, &f32s(&xv)).unwrap();
    plan.step().unwrap();
    let got = |t| plan.read_blocking(t).unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>();
    assert_close("loss", &got(loss), &values[&loss], GPU_TOL);
    assert_close("gradient through the casts", &got(dx), &values[&dx], 1.0 / 1024.0);
    // The gradient did go through f16: every value of it is an f16.
    for &v in &values[&dx] {
        let step = f16_spacing(v);
        assert!(v == 0.0 || (v / step).fract() == 0.0, "gradient {v} is not an f16");
    }
}
