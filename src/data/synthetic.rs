//! The built-in dataset: 10 classes of shapes and textures (disk, square, triangle, plus, ring,
//! horizontal stripes, vertical stripes, checkerboard, diamond, X) drawn at 32x32 with random
//! colours (any hue and saturation for shape and background, brightness contrast of either
//! sign), position, size, a small rotation and light pixel noise.
//!
//! Designed so that learning visibly helps: every nuisance is one that SwAV's augmentations
//! randomise between two views (colour jitter with any hue, grayscale, resized crops, flips),
//! so a network trained to agree across views becomes invariant to it and keeps the shape,
//! while an untrained network's features are dominated by colour and brightness. Nuisances
//! that no augmentation teaches (background gradients, varying noise levels — in an earlier
//! version of this dataset) only made the trained features *worse* than random ones: SwAV
//! learned to tell images apart by them instead of by shape.
use super::{DataSplit, Dataset, Image};
use crate::rng::Rng;

pub const CLASSES: [&str; 10] =
    ["disk", "square", "triangle", "plus", "ring", "h-stripes", "v-stripes", "checker", "diamond", "x"];
pub const SIZE: usize = 32;
pub const TRAIN_PER_CLASS: usize = 400;
pub const TEST_PER_CLASS: usize = 100;
const SEED: u64 = 0x5_3A_F0;
/// Pixel noise (std, on [0, 1] values).
const NOISE: f64 = 0.03;

/// Whether local point (u, v) (shape radius 1) is inside shape `class`.
fn inside(class: usize, u: f64, v: f64) -> bool {
    let box_max = u.abs().max(v.abs());
    match class {
        0 => u * u + v * v <= 1.0,
        1 => box_max <= 0.8,
        2 => (-0.55..=0.95).contains(&v) && u.abs() <= (0.95 - v) * 0.62,
        3 => (u.abs() < 0.3 && v.abs() < 0.95) || (v.abs() < 0.3 && u.abs() < 0.95),
        4 => {
            let r = (u * u + v * v).sqrt();
            (0.55..=1.0).contains(&r)
        }
        5 => box_max <= 0.9 && ((v + 1.0) * 2.5).floor() as i64 % 2 == 0,
        6 => box_max <= 0.9 && ((u + 1.0) * 2.5).floor() as i64 % 2 == 0,
        7 => box_max <= 0.9 && (((u + 1.0) * 2.0).floor() as i64 + ((v + 1.0) * 2.0).floor() as i64) % 2 == 0,
        8 => u.abs() + v.abs() <= 1.0,
        _ => ((u - v).abs() < 0.35 || (u + v).abs() < 0.35) && box_max <= 0.95,
    }
}

/// HSV (all in [0, 1]) to RGB.
fn hsv(h: f64, s: f64, v: f64) -> [f64; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h6 % 2.0) - 1.0).abs());
    let (r, g, b) = match h6 as usize {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

/// One image of `class` from its own random stream.
pub fn draw(class: usize, rng: &mut Rng) -> Image {
    let s = SIZE as f64;
    // Shape and background: any hue, any saturation, brightnesses at least 0.35 apart in
    // either order (a dark shape on a light ground or the reverse).
    let (mut v_fg, mut v_bg) = (rng.range(0.15, 1.0), rng.range(0.15, 1.0));
    while (v_fg - v_bg).abs() < 0.35 {
        v_fg = rng.range(0.15, 1.0);
        v_bg = rng.range(0.15, 1.0);
    }
    let bg = hsv(rng.uniform(), rng.range(0.2, 1.0), v_bg);
    let fg = hsv(rng.uniform(), rng.range(0.2, 1.0), v_fg);
    let radius = rng.range(0.3, 0.48) * s;
    let cx = rng.range(radius, s - radius);
    let cy = rng.range(radius, s - radius);
    let theta = rng.range(-0.35, 0.35);
    let (sin, cos) = theta.sin_cos();
    let mut rgb = vec![0u8; SIZE * SIZE * 3];
    for y in 0..SIZE {
        for x in 0..SIZE {
            // 2x2 supersampling for smooth edges.
            let mut cover = 0.0;
            for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let (px, py) = (x as f64 + dx - cx, y as f64 + dy - cy);
                let (u, v) = ((cos * px + sin * py) / radius, (-sin * px + cos * py) / radius);
                if inside(class, u, v) {
                    cover += 0.25;
                }
            }
            for c in 0..3 {
                let v = bg[c] * (1.0 - cover) + fg[c] * cover + NOISE * rng.normal();
                rgb[(y * SIZE + x) * 3 + c] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Image { width: SIZE, height: SIZE, rgb }
}

fn split(per_class: usize, stream: u64) -> Dataset {
    let mut order: Vec<(usize, usize)> = (0..CLASSES.len()).flat_map(|c| (0..per_class).map(move |i| (c, i))).collect();
    Rng::new(SEED ^ stream).shuffle(&mut order);
    let images =
        order.iter().map(|&(c, i)| draw(c, &mut Rng::derive(SEED, stream, (c * 1_000_000 + i) as u64))).collect();
    Dataset::from_images(
        "built-in shapes",
        images,
        Some(order.iter().map(|&(c, _)| c as u32).collect()),
        CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

/// The built-in train (4,000 images) and test (1,000) splits, identical on every run.
pub fn builtin() -> DataSplit {
    DataSplit { train: split(TRAIN_PER_CLASS, 1), test: Some(split(TEST_PER_CLASS, 2)) }
}
