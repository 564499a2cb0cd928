//! The built-in dataset: 10 classes of shapes and textures (disk, square, triangle, plus, ring,
//! horizontal stripes, vertical stripes, checkerboard, diamond, X) drawn at 32x32 under random
//! colours, position, size, small rotation, background gradients and pixel noise. Colour and
//! background vary far more than the class, so an untrained network's features (which mostly
//! see colour) classify poorly, while features invariant to colour jitter, position and scale
//! (what SwAV's multi-crop learns) separate the shapes.
use super::{DataSplit, Dataset, Image};
use crate::rng::Rng;

pub const CLASSES: [&str; 10] =
    ["disk", "square", "triangle", "plus", "ring", "h-stripes", "v-stripes", "checker", "diamond", "x"];
pub const SIZE: usize = 32;
pub const TRAIN_PER_CLASS: usize = 400;
pub const TEST_PER_CLASS: usize = 100;
const SEED: u64 = 0x5_3A_F0;

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

fn color(rng: &mut Rng) -> [f64; 3] {
    [rng.uniform(), rng.uniform(), rng.uniform()]
}

/// One image of `class` from its own random stream.
pub fn draw(class: usize, rng: &mut Rng) -> Image {
    let s = SIZE as f64;
    let bg0 = color(rng);
    let bg1 = color(rng);
    let mut fg = color(rng);
    // Keep the shape visible against the background.
    while (0..3).map(|c| (fg[c] - bg0[c]).abs()).sum::<f64>() < 0.6 {
        fg = color(rng);
    }
    let radius = rng.range(0.3, 0.48) * s;
    let cx = rng.range(radius, s - radius);
    let cy = rng.range(radius, s - radius);
    let theta = rng.range(-0.35, 0.35);
    let (sin, cos) = theta.sin_cos();
    let grad_angle = rng.range(0.0, std::f64::consts::TAU);
    let (gs, gc) = grad_angle.sin_cos();
    let noise = rng.range(0.0, 0.08);
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
            let t = 0.5 + 0.5 * ((x as f64 / s - 0.5) * gc + (y as f64 / s - 0.5) * gs);
            for c in 0..3 {
                let bg = bg0[c] * (1.0 - t) + bg1[c] * t * 0.6 + bg0[c] * t * 0.4;
                let v = bg * (1.0 - cover) + fg[c] * cover + noise * rng.normal();
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
    Dataset {
        source: "built-in shapes".into(),
        images,
        labels: Some(order.iter().map(|&(c, _)| c as u32).collect()),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
    }
}

/// The built-in train (4,000 images) and test (1,000) splits, identical on every run.
pub fn builtin() -> DataSplit {
    DataSplit { train: split(TRAIN_PER_CLASS, 1), test: Some(split(TEST_PER_CLASS, 2)) }
}
