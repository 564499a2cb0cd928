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
