//! The test suite's side of the shared helpers (`swav_wgpu::testing`): the GPU (never
//! silently skipped in CI), the variants to run, and panicking wrappers of the fallible ones.
use std::sync::{Arc, OnceLock};

use swav_wgpu::gpu::{Dispatch, Gpu, Tensor};
pub use swav_wgpu::rng::Rng;
use swav_wgpu::testing;
// Each test binary uses some of them.
#[allow(unused_imports)]
pub use swav_wgpu::testing::{
    f32s, fd_check, fd_check_h, fixture_dir, in_ci, max_rel_err, TestData, FD_TOL, GPU_TOL, REL_FLOOR,
};

/// The shared device. In CI (`CI=true` or `CI=1`) a missing adapter fails the test; locally it says why
/// and the caller returns early.
pub fn gpu() -> Option<Arc<Gpu>> {
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    let r = GPU.get_or_init(|| Gpu::from_env_blocking().map_err(|e| e.to_string()));
    match r {
        Ok(g) => Some(Arc::clone(g)),
        Err(e) => {
            if in_ci() {
                panic!("GPU tests need an adapter and CI must not skip them: {e}");
            }
            eprintln!("SKIPPING GPU test (no adapter; this would FAIL in CI): {e}");
            None
        }
    }
}

/// Every GEMM variant this device runs. The subgroup variants are an optional fast path, but
/// llvmpipe (CI's adapter) has subgroups: there they must run, so CI tests them and the
/// fallback both; elsewhere their absence is said, not hidden.
pub fn gemm_variants(gpu: &Gpu) -> Vec<swav_wgpu::ops::matmul::GemmVariant> {
    if gpu.subgroup_size.is_none() {
        assert!(!gpu.info.name.contains("llvmpipe"), "llvmpipe must run the subgroup GEMM variants");
        eprintln!("subgroup GEMM variants NOT TESTED: {} has no usable subgroups", gpu.describe());
    }
    swav_wgpu::ops::matmul::GemmVariant::all(gpu.subgroup_size)
}

/// Upload f64 data as f32.
pub fn upload(gpu: &Gpu, name: &str, data: &[f64]) -> Tensor {
    testing::upload(gpu, name, data).expect("upload")
}

/// An output tensor pre-filled with NaN, so any element a kernel fails to write shows up.
pub fn nan_tensor(gpu: &Gpu, name: &str, len: usize) -> Tensor {
    testing::nan_tensor(gpu, name, len).expect("nan tensor")
}

pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let e = max_rel_err(got, want);
    assert!(e <= tol, "{what}: max relative error {e:.3e} > {tol:.1e}");
}

pub fn run(gpu: &Gpu, dispatches: &[Dispatch]) {
    gpu.run(dispatches);
}

pub fn read(gpu: &Gpu, t: &Tensor) -> Vec<f64> {
    gpu.read_blocking(t).expect("readback").into_iter().map(|v| v as f64).collect()
}

/// The shared device when it has shader-f16 (the f16 kernel tests). lavapipe, CI's adapter,
/// has it: there a missing f16 fails; elsewhere the test says it skipped.
#[allow(dead_code)]
pub fn f16_gpu(test: &str) -> Option<Arc<Gpu>> {
    let gpu = gpu()?;
    if !gpu.f16 {
        assert!(!in_ci(), "{test}: the CI adapter must have shader-f16");
        eprintln!("SKIPPING {test}: {} has no shader-f16", gpu.info.name);
        return None;
    }
    Some(gpu)
}

/// The spacing of f16 values around |x| (subnormals: 2^-24).
#[allow(dead_code)]
pub fn f16_spacing(x: f64) -> f64 {
    let e = x.abs().log2().floor().max(-14.0);
    2f64.powf(e - 10.0)
}

/// `data` rounded to f16 (the values an f16 tensor holds) and uploaded as an f16 tensor: the
/// CPU reference and the kernel see the same inputs (the cast of an f16 value is exact).
#[allow(dead_code)]
pub fn upload_f16(gpu: &Gpu, name: &str, data: &[f64]) -> (Tensor, Vec<f64>) {
    use swav_wgpu::ops::elementwise;
    let rounded = elementwise::cpu::round_to_f16(data);
    let wide = upload(gpu, name, &rounded);
    let half = gpu.tensor_of(name, &[data.len()], swav_wgpu::gpu::DType::F16).expect("f16 tensor");
    run(gpu, &[elementwise::cast(gpu, &wide, &half).expect("cast")]);
    (half, rounded)
}

/// An f16 output tensor pre-filled with NaN.
#[allow(dead_code)]
pub fn nan_tensor_f16(gpu: &Gpu, name: &str, len: usize) -> Tensor {
    upload_f16(gpu, name, &vec![f64::NAN; len]).0
}

/// An f16 tensor's values (through an exact cast to f32).
#[allow(dead_code)]
pub fn read_f16(gpu: &Gpu, t: &Tensor) -> Vec<f64> {
    let wide = nan_tensor(gpu, "f16 readback", t.len());
    run(gpu, &[swav_wgpu::ops::elementwise::cast(gpu, t, &wide).expect("cast")]);
    read(gpu, &wide)
}

/// An f16 kernel's output against the CPU reference rounded to f16 where the kernel stores:
/// each element within one f16 spacing (the kernel rounds its f32 result to a neighbouring
/// f16, nearest or toward zero as Vulkan allows; the reference rounds its f64 result to the
/// nearest), plus 1e-5 of the largest value for the f32-vs-f64 arithmetic before the rounding.
#[allow(dead_code)]
pub fn assert_f16_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = f16_spacing(w) + 1e-5 * scale;
        assert!((g - w).abs() <= tol, "{what}: element {i}: {g} vs {w} (tolerance {tol:.2e}: one f16 spacing)");
    }
}
