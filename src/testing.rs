//! What every kernel check shares, in one place for the test suite (`tests/`) and the
//! browser's kernel checks (`web::kernel_checks`): the one relative-error definition and its
//! tolerances, seeded random inputs, uploads of f64 data, NaN-prefilled outputs, finite
//! differences and the PyTorch fixtures' folder.
#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;

use crate::error::Result;
use crate::gpu::{Gpu, Tensor};
use crate::rng::Rng;

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

/// A procedural "photo" of class `class`: a sky-to-ground gradient, a few textured shapes
/// whose kind and hue follow the class, and grain, so that it compresses like a photo (about
/// 2-3 bits per pixel as a quality-90 JPEG) rather than like flat colour.
#[cfg(not(target_arch = "wasm32"))]
pub fn photo(width: u32, height: u32, class: usize, seed: u64) -> image::RgbImage {
    let mut rng = Rng::derive(seed, class as u64, (width as u64) << 32 | height as u64);
    let mut c = || [rng.uniform() as f32, rng.uniform() as f32, rng.uniform() as f32];
    let (top, bottom) = (c(), c());
    let hue = (class as f32 * 0.37).fract();
    let shapes: Vec<[f32; 5]> = (0..4)
        .map(|_| {
            let mut r = Rng::derive(seed, class as u64 + 100, rng.next_u64());
            [
                r.uniform() as f32,
                r.uniform() as f32,
                0.1 + 0.3 * r.uniform() as f32,
                0.1 + 0.3 * r.uniform() as f32,
                r.uniform() as f32,
            ]
        })
        .collect();
    let turn = hue * std::f32::consts::TAU;
    let shade = [0.5 + 0.5 * turn.cos(), 0.5 + 0.5 * (turn + 2.1).cos(), 0.5 + 0.5 * (turn + 4.2).cos()];
    let mut grain = Rng::new(seed ^ 0x9e37);
    image::RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
        let mut px = [0.0f32; 3];
        for ch in 0..3 {
            px[ch] = top[ch] * (1.0 - v) + bottom[ch] * v;
        }
        for s in &shapes {
            let (dx, dy) = ((u - s[0]) / s[2], (v - s[1]) / s[3]);
            let inside =
                if class.is_multiple_of(2) { dx * dx + dy * dy < 1.0 } else { dx.abs() < 1.0 && dy.abs() < 1.0 };
            if inside {
                let texture = 0.15 * ((u * 90.0 * (1.0 + s[4])).sin() * (v * 70.0).cos());
                for ch in 0..3 {
                    px[ch] = shade[ch] * (0.7 + 0.3 * s[4]) + texture;
                }
            }
        }
        let n = (grain.next_u64() % 7) as f32 / 255.0 - 3.0 / 255.0;
        image::Rgb(px.map(|p| ((p + n).clamp(0.0, 1.0) * 255.0) as u8))
    })
}

/// Writes an ImageFolder tree of procedural photos (`photo`): `per_class` images in each of
/// `classes` class folders (flat when `classes` is 0: `per_class` unlabeled images), sizes
/// taken in turn from `sizes`, every fourth a PNG and the rest quality-90 JPEGs. Returns the
/// files in listing order.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_photo_folder(
    dir: &std::path::Path,
    classes: usize,
    per_class: usize,
    sizes: &[(u32, u32)],
    seed: u64,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for c in 0..classes.max(1) {
        let sub = if classes == 0 { dir.to_path_buf() } else { dir.join(format!("class{c}")) };
        std::fs::create_dir_all(&sub).expect("create the photo folder");
        for i in 0..per_class {
            let (w, h) = sizes[(c * per_class + i) % sizes.len()];
            let img = photo(w, h, c, seed.wrapping_add(i as u64));
            let path = if i % 4 == 3 { sub.join(format!("{i:05}.png")) } else { sub.join(format!("{i:05}.jpg")) };
            if i % 4 == 3 {
                img.save(&path).expect("write a PNG");
            } else {
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
                    .encode_image(&img)
                    .expect("encode a JPEG");
                std::fs::write(&path, bytes).expect("write a JPEG");
            }
            files.push(path);
        }
    }
    files.sort();
    files
}
