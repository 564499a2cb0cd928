use crate::common::*;
use swav_wgpu::ops::conv::{self, cpu, Conv2dShape, ConvKernel, ConvPass};
use swav_wgpu::ops::matmul::GemmVariant;

/// What a pass may run on `variant`: its implicit GEMM, and the row kernel
/// `ConvKernel::with_variant` picks instead where one applies (both are tested).
fn kernels(gpu: &swav_wgpu::gpu::Gpu, s: &Conv2dShape, pass: ConvPass, variant: GemmVariant) -> Vec<ConvKernel> {
    let chosen = ConvKernel::with_variant(gpu, s, pass, variant);
    let mut v = vec![ConvKernel::Gemm(variant)];
    if chosen != v[0] {
        v.push(chosen);
    }
    v
}

/// ResNet's convs at toy sizes plus ragged ones: 7x7/2 pad 3, 3x3/1 pad 1, 3x3/2 pad 1,
/// 1x1/2 (downsample), a rectangular kernel with unequal strides, odd channel counts. With
/// subgroups the unit-x-stride ones run the direct row kernel: 8-pixel segments (ragged: 9
/// and 12 wide), 4-pixel ones (6 wide), 1x1 and 2x3 kernels, 33 and 19 output channels
/// (ragged row tiles of 64 and 32), a row stride of 2; the weight-gradient row kernel the
/// ones whose output rows are a multiple of 4 wide (8, 12: segments of 8 and 4 pixels).
fn shapes() -> Vec<Conv2dShape> {
    vec![
        Conv2dShape::square(2, 3, 17, 5, 7, 2, 3),
        Conv2dShape::square(2, 7, 9, 9, 3, 1, 1),
        Conv2dShape::square(3, 5, 11, 6, 3, 2, 1),
        Conv2dShape::square(2, 6, 10, 11, 1, 2, 0),
        Conv2dShape::square(2, 4, 10, 5, 3, 3, 1),
        Conv2dShape { batch: 1, cin: 3, h: 13, w: 8, cout: 4, kh: 2, kw: 3, stride: (2, 1), pad: (1, 0) },
        Conv2dShape::square(2, 10, 12, 33, 3, 1, 1),
        Conv2dShape::square(2, 9, 6, 19, 1, 1, 0),
        Conv2dShape::square(3, 11, 8, 20, 3, 1, 1),
        Conv2dShape::square(2, 5, 8, 9, 1, 1, 0),
        Conv2dShape { batch: 2, cin: 3, h: 9, w: 10, cout: 5, kh: 3, kw: 3, stride: (2, 1), pad: (1, 0) },
    ]
}

#[test]
fn conv_forward_matches_cpu_for_every_variant() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(10);
    let mut row_kernel_runs = 0;
    for variant in gemm_variants(&gpu) {
        for s in shapes() {
            let x = rng.vec_f32(s.input_len());
            let w = rng.vec_f32(s.weight_len());
            let want = cpu::forward(&x, &w, s);
            let (tx, tw) = (upload(&gpu, "x", &x), upload(&gpu, "w", &w));
            for k in kernels(&gpu, &s, ConvPass::Forward, variant) {
                let y = nan_tensor(&gpu, "y", s.output_len());
                run(&gpu, &conv::forward(&gpu, &tx, &tw, &y, s, k).unwrap());
                row_kernel_runs += matches!(k, ConvKernel::Rows { .. }) as usize;
                assert_close(&format!("conv forward {k:?} {s:?}"), &read(&gpu, &y), &want, GPU_TOL);
            }
        }
    }
    if gpu.subgroup_size.is_some() {
        assert!(row_kernel_runs >= 16, "the row kernel ran only {row_kernel_runs} times");
    }
}

#[test]
fn conv_backward_matches_cpu_for_every_variant_and_split() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(11);
    let mut weight_row_kernel_runs = 0;
    for variant in gemm_variants(&gpu) {
        for s in shapes() {
            let x = rng.vec_f32(s.input_len());
            let w = rng.vec_f32(s.weight_len());
            let dy = rng.vec_f32(s.output_len());
            let (want_dx, want_dw) = cpu::backward(&x, &w, &dy, s);
            let (tx, tw, tdy) = (upload(&gpu, "x", &x), upload(&gpu, "w", &w), upload(&gpu, "dy", &dy));
            for k in kernels(&gpu, &s, ConvPass::BackwardInput, variant) {
                let dx = nan_tensor(&gpu, "dx", s.input_len());
                run(&gpu, &conv::backward_input(&gpu, &tdy, &tw, &dx, s, k).unwrap());
                assert_close(&format!("conv dX {k:?} {s:?}"), &read(&gpu, &dx), &want_dx, GPU_TOL);
            }
            for k in kernels(&gpu, &s, ConvPass::BackwardWeight, variant) {
                weight_row_kernel_runs += matches!(k, ConvKernel::WeightRows { .. }) as usize;
                for splits in [1, 3, 7] {
                    let dw = nan_tensor(&gpu, "dw", s.weight_len());
                    run(&gpu, &conv::backward_weight(&gpu, &tx, &tdy, &dw, s, k, splits).unwrap());
                    assert_close(&format!("conv dW {k:?} splits {splits} {s:?}"), &read(&gpu, &dw), &want_dw, GPU_TOL);
                }
            }
        }
    }
    if gpu.subgroup_size.is_some() {
        assert!(weight_row_kernel_runs >= 12, "the weight row kernel ran only {weight_row_kernel_runs} times");
    }
}

/// Every conv kernel over f16 activations (x, y, dy, dx stored as f16; weights, dW and the
/// accumulation f32), every variant, row kernel and split: against the CPU reference on the
/// same f16 inputs, rounded to f16 where the kernel stores (y, dx: one f16 spacing); dW is
/// f32 (GPU_TOL).
#[test]
fn conv_f16_passes_match_cpu_for_every_variant_and_split() {
    let Some(gpu) = f16_gpu("conv_f16_passes_match_cpu_for_every_variant_and_split") else { return };
    let mut rng = Rng::new(12);
    let (mut row_runs, mut weight_row_runs) = (0, 0);
    for variant in gemm_variants(&gpu) {
        for s in shapes() {
            let w = rng.vec_f32(s.weight_len());
            let (tx, x) = upload_f16(&gpu, "x", &rng.vec_f32(s.input_len()));
            let (tdy, dy) = upload_f16(&gpu, "dy", &rng.vec_f32(s.output_len()));
            let tw = upload(&gpu, "w", &w);
            let round = swav_wgpu::ops::elementwise::cpu::round_to_f16;
            let want_y = round(&cpu::forward(&x, &w, s));
            let (want_dx, want_dw) = cpu::backward(&x, &w, &dy, s);
            let want_dx = round(&want_dx);
            for k in kernels(&gpu, &s, ConvPass::Forward, variant) {
                let y = nan_tensor_f16(&gpu, "y", s.output_len());
                run(&gpu, &conv::forward(&gpu, &tx, &tw, &y, s, k).unwrap());
                row_runs += matches!(k, ConvKernel::Rows { .. }) as usize;
                assert_f16_close(&format!("f16 conv forward {k:?} {s:?}"), &read_f16(&gpu, &y), &want_y);
            }
            for k in kernels(&gpu, &s, ConvPass::BackwardInput, variant) {
                let dx = nan_tensor_f16(&gpu, "dx", s.input_len());
                run(&gpu, &conv::backward_input(&gpu, &tdy, &tw, &dx, s, k).unwrap());
                assert_f16_close(&format!("f16 conv dX {k:?} {s:?}"), &read_f16(&gpu, &dx), &want_dx);
            }
            for k in kernels(&gpu, &s, ConvPass::BackwardWeight, variant) {
                weight_row_runs += matches!(k, ConvKernel::WeightRows { .. }) as usize;
                for splits in [1, 3] {
                    let dw = nan_tensor(&gpu, "dw", s.weight_len());
                    run(&gpu, &conv::backward_weight(&gpu, &tx, &tdy, &dw, s, k, splits).unwrap());
                    let what = format!("f16 conv dW {k:?} splits {splits} {s:?}");
                    assert_close(&what, &read(&gpu, &dw), &want_dw, GPU_TOL);
                }
            }
        }
    }
    if gpu.subgroup_size.is_some() {
        assert!(row_runs >= 16 && weight_row_runs >= 12, "row kernels ran {row_runs} and {weight_row_runs} times");
    }
    // Mixed element types are refused, not run.
    let s = shapes()[1];
    let (x16, _) = upload_f16(&gpu, "x", &vec![0.5; s.input_len()]);
    let (w, y) = (nan_tensor(&gpu, "w", s.weight_len()), nan_tensor(&gpu, "y", s.output_len()));
    let err = conv::forward(&gpu, &x16, &w, &y, s, ConvKernel::choose(&gpu, &s, ConvPass::Forward)).unwrap_err();
    assert!(err.to_string().contains("holds f32, the kernel reads f16"), "{err}");
}

/// A row kernel handed a shape it does not apply to, or a kernel of another pass, is refused
/// with an error, not run.
#[test]
fn conv_passes_refuse_kernels_that_do_not_apply() {
    let Some(gpu) = gpu() else { return };
    let strided = Conv2dShape::square(2, 3, 9, 5, 3, 2, 1);
    let (x, w) = (nan_tensor(&gpu, "x", strided.input_len()), nan_tensor(&gpu, "w", strided.weight_len()));
    let y = nan_tensor(&gpu, "y", strided.output_len());
    let rows = ConvKernel::Rows { tm: 8, tn: 8, sg: 8 };
    let err = conv::forward(&gpu, &x, &w, &y, strided, rows).unwrap_err().to_string();
    assert!(err.contains("does not apply"), "{err}");
    let err = conv::forward(&gpu, &x, &w, &y, strided, ConvKernel::WeightRows { tm: 8, tp: 8, sg: 8 }).unwrap_err();
    assert!(err.to_string().contains("not a kernel for this pass"), "{err}");
    let err = conv::backward_weight(&gpu, &x, &y, &w, strided, rows, 1).unwrap_err();
    assert!(err.to_string().contains("not a kernel for this pass"), "{err}");
}

#[test]
fn conv_backward_matches_finite_differences() {
    let mut rng = Rng::new(12);
    for s in shapes() {
        let x = rng.vec(s.input_len());
        let w = rng.vec(s.weight_len());
        let g = rng.vec(s.output_len());
        let (dx, dw) = cpu::backward(&x, &w, &g, s);
        fd_check(&format!("conv dX {s:?}"), &x, &dx, &g, |v| cpu::forward(v, &w, s));
        fd_check(&format!("conv dW {s:?}"), &w, &dw, &g, |v| cpu::forward(&x, v, s));
    }
}
