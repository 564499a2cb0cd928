//! Test helpers shared by every op family: the GPU (never silently skipped in CI), seeded
//! random data, the one relative-error definition, NaN-prefilled outputs and finite differences.
use std::sync::{Arc, OnceLock};

use swav_wgpu::gpu::{Dispatch, Gpu, Tensor};

/// Max relative error allowed between a GPU kernel (f32) and its f64 CPU reference.
pub const GPU_TOL: f64 = 1e-4;
/// Max relative error between a backward rule and central finite differences (all f64).
pub const FD_TOL: f64 = 1e-6;
/// See `max_rel_err`.
pub const REL_FLOOR: f64 = 1e-2;

/// The shared device. In CI (CI set) a missing adapter fails the test; locally it says why
/// and the caller returns early.
pub fn gpu() -> Option<Arc<Gpu>> {
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    let r = GPU.get_or_init(|| Gpu::from_env_blocking().map_err(|e| e.to_string()));
    match r {
        Ok(g) => Some(Arc::clone(g)),
        Err(e) => {
            if std::env::var_os("CI").is_some() {
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

/// splitmix64: small, seeded, reproducible.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform()).collect()
    }
    /// Values with |v| >= 0.05, away from kinks (ReLU at 0) so finite differences are smooth.
    pub fn vec_away_from_zero(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let v = self.uniform();
                v.signum() * (0.05 + 0.95 * v.abs())
            })
            .collect()
    }
    /// Rounded to f32 so the GPU and the f64 reference see exactly the same inputs.
    pub fn vec_f32(&mut self, n: usize) -> Vec<f64> {
        self.vec(n).into_iter().map(|v| v as f32 as f64).collect()
    }
}

pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// |got - want| / max(|want|, REL_FLOOR * max|want|), maximised; NaN anywhere gives +inf.
///
/// Why the floor is 1e-2 of the largest value and not 1e-3: an f32 sum of K terms carries an
/// absolute error proportional to the size of its *terms*, so outputs that cancel to near zero
/// (a 64-long dot product landing at 1e-3 of the max) have f32 errors of ~1.5e-4 relative to
/// themselves with any summation order. Every output at or above 1 % of the largest is held to
/// 1e-4 of its own value; smaller ones to 1e-6 of the largest.
pub fn max_rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let floor = (REL_FLOOR * scale).max(f64::MIN_POSITIVE);
    got.iter()
        .zip(want)
        .map(|(g, w)| if g.is_nan() || w.is_nan() { f64::INFINITY } else { (g - w).abs() / w.abs().max(floor) })
        .fold(0.0, f64::max)
}

pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let e = max_rel_err(got, want);
    assert!(e <= tol, "{what}: max relative error {e:.3e} > {tol:.1e}");
}

/// Upload f64 data as f32.
pub fn upload(gpu: &Gpu, name: &str, data: &[f64]) -> Tensor {
    gpu.tensor_from(name, &[data.len()], &f32s(data)).expect("upload")
}

/// An output tensor pre-filled with NaN, so any element a kernel fails to write shows up.
pub fn nan_tensor(gpu: &Gpu, name: &str, len: usize) -> Tensor {
    gpu.tensor_filled(name, &[len], f32::NAN).expect("nan tensor")
}

pub fn run(gpu: &Gpu, dispatches: &[Dispatch]) {
    gpu.run(dispatches);
}

pub fn read(gpu: &Gpu, t: &Tensor) -> Vec<f64> {
    gpu.read_blocking(t).expect("readback").into_iter().map(|v| v as f64).collect()
}

/// Checks `grad` = d<f(x), w>/dx on up to 64 indices with the 4th-order central difference
/// (f(x-2h) - 8f(x-h) + 8f(x+h) - f(x+2h)) / 12h, differencing outputs elementwise before
/// weighting so large loss values do not cancel away the digits.
pub fn fd_check(what: &str, x: &[f64], grad: &[f64], w: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) {
    fd_check_h(what, x, grad, w, 1e-4, f)
}

/// `fd_check` with step `h` (small steps for losses with ReLU kinks inside).
pub fn fd_check_h(what: &str, x: &[f64], grad: &[f64], w: &[f64], h: f64, f: impl Fn(&[f64]) -> Vec<f64>) {
    let n = x.len();
    let stride = (n / 64).max(1);
    let mut fd = Vec::new();
    let mut an = Vec::new();
    let mut xp = x.to_vec();
    for i in (0..n).step_by(stride) {
        let orig = xp[i];
        let mut at = |d: f64| {
            xp[i] = orig + d;
            f(&xp)
        };
        let (p2, p1, m1, m2) = (at(2.0 * h), at(h), at(-h), at(-2.0 * h));
        xp[i] = orig;
        let d: f64 = (0..w.len()).map(|j| ((m2[j] - p2[j]) + 8.0 * (p1[j] - m1[j])) * w[j]).sum();
        fd.push(d / (12.0 * h));
        an.push(grad[i]);
    }
    let e = max_rel_err(&an, &fd);
    assert!(e <= FD_TOL, "{what}: backward vs finite differences, max relative error {e:.3e} > {FD_TOL:.1e}");
}
