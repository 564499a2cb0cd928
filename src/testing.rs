//! What every kernel check shares, in one place for the test suite (`tests/`) and the
//! browser's kernel checks (`web::kernel_checks`): the one relative-error definition and its
//! tolerances, seeded random inputs, uploads of f64 data, NaN-prefilled outputs, finite
//! differences and the PyTorch fixtures' folder.
#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;

use crate::error::Result;
use crate::gpu::{Gpu, Tensor};
use crate::rng::Rng;

/// Whether a CI variable's value means "this is CI", where a missing adapter or tool fails a
/// test instead of skipping it: `true` (any case) or `1`, as CI services set it. `false`, `0`,
/// empty or unset do not.
pub fn ci_value_means_ci(value: Option<&str>) -> bool {
    value.map(str::trim).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether this process runs in CI (`CI=true` or `CI=1`; see `ci_value_means_ci`).
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var("CI").ok().as_deref())
}

/// Max relative error allowed between a GPU kernel (f32) and its f64 CPU reference.
pub const GPU_TOL: f64 = 1e-4;
/// Max relative error between a backward rule and central finite differences (all f64).
pub const FD_TOL: f64 = 1e-6;
/// See `max_rel_err`.
pub const REL_FLOOR: f64 = 1e-2;

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

/// `max_rel_err` of a GPU result read back as f32.
pub fn max_rel_err_f32(got: &[f32], want: &[f64]) -> f64 {
    max_rel_err(&got.iter().map(|&v| v as f64).collect::<Vec<_>>(), want)
}

/// Random test inputs from the library's seeded generator.
pub trait TestData {
    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f64;
    fn vec(&mut self, n: usize) -> Vec<f64>;
    /// Values with |v| >= 0.05, away from kinks (ReLU at 0) so finite differences are smooth.
    fn vec_away_from_zero(&mut self, n: usize) -> Vec<f64>;
    /// Rounded to f32 so the GPU and the f64 reference see exactly the same inputs.
    fn vec_f32(&mut self, n: usize) -> Vec<f64>;
}

impl TestData for Rng {
    fn signed(&mut self) -> f64 {
        self.range(-1.0, 1.0)
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.signed()).collect()
    }
    fn vec_away_from_zero(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let v = self.signed();
                v.signum() * (0.05 + 0.95 * v.abs())
            })
            .collect()
    }
    fn vec_f32(&mut self, n: usize) -> Vec<f64> {
        self.vec(n).into_iter().map(|v| v as f32 as f64).collect()
    }
}

pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// f64 data as an f32 tensor.
pub fn upload(gpu: &Gpu, name: &str, data: &[f64]) -> Result<Tensor> {
    gpu.tensor_from(name, &[data.len()], &f32s(data))
}

/// An output tensor pre-filled with NaN, so any element a kernel fails to write shows up.
pub fn nan_tensor(gpu: &Gpu, name: &str, len: usize) -> Result<Tensor> {
    gpu.tensor_filled(name, &[len], f32::NAN)
}

/// `../shared/fixtures/<name>` beside the repository (the PyTorch float64 references).
#[cfg(not(target_arch = "wasm32"))]
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(name)
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

#[cfg(not(target_arch = "wasm32"))]
pub use crate::data::photos::{photo, write_photo_folder};
