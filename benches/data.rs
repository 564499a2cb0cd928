//! The data pipeline, per CPU core, side by side with the anchor: the official SwAV multi-crop
//! transform in Pillow + numpy (benches/pillow_swav.py, run when python3 has PIL), in the
//! same run on the same generated photos (procedural scenes, quality-90 JPEGs):
//! - building the dataset cache from 12-megapixel JPEGs (libjpeg-turbo DCT scaling + SIMD
//!   resize), against Pillow's decode with and without `Image.draft`, and the previous loader
//!   (the `image` crate's full decode and resize);
//! - raw pixels against JPEG records at 256 px: size on disk and multi-crop rate;
//! - multi-crop 2x224 + 6x96 samples/s from the cache, against Pillow's transform with its
//!   decode of the original photos.
//!
//! `cargo bench --bench data [-- --quick]` (`--quick`: fewer photos, shorter timings).
use std::path::{Path, PathBuf};
use std::time::Instant;

use swav_wgpu::data::augment::AugmentConfig;
use swav_wgpu::data::cache::{self, CacheOptions, Encoding};
use swav_wgpu::data::loader::make_batch;
use swav_wgpu::data::{folder, Dataset};
use swav_wgpu::testing::write_photo_folder;
use swav_wgpu::train::CropConfig;

const SIDE: usize = 256;
const CROPS: &str = "2x224,6x96";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `f` on one thread (a one-thread rayon pool): per-core rates.
fn one_core<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a rayon pool").install(f)
}

/// Builds a fresh cache of `photos` `reps` times and returns it with the median build's
/// images/s on one core.
fn build(photos: &Path, dir: &Path, encoding: Option<Encoding>, reps: usize) -> (Dataset, f64) {
    let opts = CacheOptions { dir: dir.to_path_buf(), short_side: SIDE, quiet: true, encoding };
    let listing = folder::list(photos).expect("photos listed");
    let mut rates = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let _ = std::fs::remove_dir_all(dir);
        let t = Instant::now();
        last = Some(one_core(|| cache::open_or_build(photos, &listing, &opts)).expect("cache built"));
        rates.push(listing.files.len() as f64 / t.elapsed().as_secs_f64());
    }
    (Dataset::from_cache(last.expect("reps >= 1")), median(rates))
}

/// Images/s of the previous loader on one core: full decode, then a full-size resize.
fn previous_loader_rate(files: &[PathBuf]) -> f64 {
    let t = Instant::now();
    for f in files {
        let img = image::open(f).expect("decodes").to_rgb8();
        let s = SIDE as f64 / img.width().min(img.height()) as f64;
        let (w, h) = ((img.width() as f64 * s).round() as u32, (img.height() as f64 * s).round() as u32);
        std::hint::black_box(image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle));
    }
    files.len() as f64 / t.elapsed().as_secs_f64()
}

/// Multi-crop samples/s on one core from `ds` (median of `reps` batches of `batch`), with the
/// official augmentation (the anchor's): jitter 0.8 / hue 0.2 at p 0.8, grey 0.2, blur 0.5.
fn multicrop_rate(ds: &Dataset, batch: usize, reps: usize) -> f64 {
    let aug = AugmentConfig::new(&CropConfig::parse_groups(CROPS).expect("crops"));
    let n = ds.len();
    one_core(|| {
        let _ = make_batch(ds, &[0], &aug, 0, 0).expect("a sample");
        let rates = (0..reps)
            .map(|r| {
                let idx: Vec<usize> = (0..batch).map(|i| (r * batch + i) % n).collect();
                let t = Instant::now();
                std::hint::black_box(make_batch(ds, &idx, &aug, 0, 0).expect("a batch"));
                batch as f64 / t.elapsed().as_secs_f64()
            })
            .collect();
        median(rates)
    })
}

/// `n` quality-90 JPEG photos in `dir` (`write_photo_folder` makes every fourth a PNG: those
/// are removed, so both sides decode the same JPEGs).
fn jpegs(dir: &Path, n: usize, sizes: &[(u32, u32)], seed: u64) -> Vec<PathBuf> {
    let mut kept = Vec::new();
    for f in write_photo_folder(dir, 0, n * 4 / 3 + 1, sizes, seed) {
        if f.extension().is_some_and(|e| e == "jpg") && kept.len() < n {
            kept.push(f);
        } else {
            std::fs::remove_file(&f).expect("remove a photo");
        }
    }
    kept
}

fn file_bytes(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The anchor's JSON lines, by bench name (None when python3 or PIL is missing).
fn pillow(photos: &Path, big: &Path, seconds: f64) -> Option<std::collections::HashMap<String, f64>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pillow_swav.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--photos", photos.to_str()?, "--crops", CROPS, "--seconds", &seconds.to_string()])
        .args(["--big", big.to_str()?, "--draft-side", &SIDE.to_string()])
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        println!("anchor not run (python3 benches/pillow_swav.py failed): {}", err.trim());
        return None;
    }
    println!("anchor: {}", err.lines().next().unwrap_or("").trim());
    let mut rates = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let (Some(name), Some(rate)) = (v["bench"].as_str(), v["per_core_per_s"].as_f64()) {
                rates.insert(name.to_string(), rate);
            }
        }
    }
    Some(rates)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_big, n_photos, reps, seconds) = if quick { (4, 48, 3, 3.0) } else { (12, 200, 5, 8.0) };
    let root = std::env::temp_dir().join(format!("swav-wgpu-bench-data-{}", std::process::id()));
    let (big, photos) = (root.join("phone"), root.join("photos"));
    println!("generating {n_big} 4032x3024 and {n_photos} ImageNet-size (500x375, 375x500, 640x480) quality-90 photos");
    let big_files = jpegs(&big, n_big, &[(4032, 3024), (3024, 4032)], 1);
    jpegs(&photos, n_photos, &[(500, 375), (375, 500), (640, 480)], 2);
    let mb = |files: &[PathBuf]| files.iter().map(|f| file_bytes(f)).sum::<u64>() as f64 / 1e6 / files.len() as f64;
    println!("  phone photos: {:.1} MB each on average", mb(&big_files));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "CPU: {cpu}; every rate is on one core (a one-thread pool); turbojpeg feature: {}",
        cfg!(feature = "turbojpeg")
    );

    // 1. Cache building from 12-MP JPEGs.
    let (_, build_big) = build(&big, &root.join("cache-big"), None, reps);
    let previous = previous_loader_rate(&big_files[..n_big.min(4)]);
    println!("cache build, 12-MP JPEG -> {SIDE} px: {build_big:.1} images/s (previous loader: {previous:.1} images/s)");

    // 2. Raw pixels against JPEG records at 256 px.
    let (raw, build_raw) = build(&photos, &root.join("cache-raw"), Some(Encoding::Raw), 1);
    let (jpeg, build_jpeg) = build(&photos, &root.join("cache-jpeg"), Some(Encoding::Jpeg), 1);
    let size = |ds: &Dataset| file_bytes(ds.cache().expect("cached").path()) as f64 / ds.len() as f64 / 1e3;
    let (rate_raw, rate_jpeg) = (multicrop_rate(&raw, 16, reps), multicrop_rate(&jpeg, 16, reps));
    println!(
        "records at {SIDE} px: raw {:.0} KB/image, built at {build_raw:.0} images/s, multi-crop {CROPS} {rate_raw:.1} samples/s; jpeg q{} {:.0} KB/image, built at {build_jpeg:.0} images/s, multi-crop {rate_jpeg:.1} samples/s",
        size(&raw),
        cache::JPEG_QUALITY,
        size(&jpeg)
    );

    // 3. Against the anchor.
    match pillow(&photos, &big, seconds) {
        Some(p) => {
            let get = |k: &str| p.get(k).copied().unwrap_or(f64::NAN);
            let (full, draft) = (get("pillow_decode_big_full"), get("pillow_decode_big_draft"));
            let (with_decode, from_ram) = (get("pillow_multicrop_with_decode"), get("pillow_multicrop_from_ram"));
            println!(
                "12-MP JPEG -> {SIDE} px, images/s: swav-wgpu cache build {build_big:.1}, Pillow {full:.1}, Pillow with draft {draft:.1}: {:.2}x Pillow with draft (previous loader {:.2}x)",
                build_big / draft,
                previous / draft
            );
            println!(
                "multi-crop {CROPS}, samples/s: swav-wgpu from the cache {rate_jpeg:.1} (jpeg records) / {rate_raw:.1} (raw); Pillow transform with its decode {with_decode:.1}, from RAM {from_ram:.1}: {:.2}x Pillow with decode",
                rate_jpeg / with_decode
            );
            println!(
                "json: {{\"kind\":\"data\",\"cache_build_12mp_per_s\":{build_big:.2},\"pillow_draft_12mp_per_s\":{draft:.2},\"multicrop_cache_jpeg_per_s\":{rate_jpeg:.2},\"multicrop_cache_raw_per_s\":{rate_raw:.2},\"pillow_multicrop_with_decode_per_s\":{with_decode:.2}}}"
            );
        }
        None => println!("anchor not run: python3 with PIL and numpy is needed for benches/pillow_swav.py"),
    }
    let _ = std::fs::remove_dir_all(&root);
}
