//! Procedural photos for tests and benchmarks (no downloads): scenes with a gradient, textured
//! shapes whose kind and hue follow a class, and grain, saved as JPEG and PNG.
use std::path::PathBuf;

use crate::rng::Rng;

/// A procedural "photo" of class `class`: a sky-to-ground gradient, a few textured shapes
/// whose kind and hue follow the class, and grain, so that it compresses like a photo (about
/// 2-3 bits per pixel as a quality-90 JPEG) rather than like flat colour.
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
        let n = (grain.next_u64() % 17) as f32 / 255.0 - 8.0 / 255.0;
        image::Rgb(px.map(|p| ((p + n).clamp(0.0, 1.0) * 255.0) as u8))
    })
}

/// Writes an ImageFolder tree of procedural photos (`photo`): `per_class` images in each of
/// `classes` class folders (flat when `classes` is 0: `per_class` unlabeled images), sizes
/// taken in turn from `sizes`, every fourth a PNG and the rest quality-90 JPEGs. Returns the
/// files in listing order.
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
