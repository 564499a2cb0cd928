//! Multi-crop augmentation as in the official recipe, per crop: RandomResizedCrop (scale range
//! per crop group, aspect 3/4..4/3), horizontal flip p 0.5, colour jitter (brightness,
//! contrast, saturation 0.8, hue 0.2, random order) with p 0.8, grayscale p 0.2, Gaussian blur
//! p 0.5, then normalisation. Deterministic for a given RNG stream.
use super::{Image, MEAN, STD};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// `count` crops of `size` px, RandomResizedCrop area fraction in [min_scale, max_scale].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropConfig {
    pub count: usize,
    pub size: usize,
    pub min_scale: f64,
    pub max_scale: f64,
}

impl CropConfig {
    /// "2x32,4x16": COUNTxSIZE groups, large first (the first group takes scale 0.14-1, the
    /// rest 0.05-0.14, as the official multi-crop).
    pub fn parse_groups(spec: &str) -> crate::Result<Vec<CropConfig>> {
        let bad = |what: String| crate::Error::Invalid(format!("'{spec}': {what}"));
        let mut out = Vec::new();
        for (i, part) in spec.split(',').enumerate() {
            let (n, s) = part
                .trim()
                .split_once(['x', 'X'])
                .ok_or_else(|| bad("each group is COUNTxSIZE, e.g. 2x32,4x16".into()))?;
            let count = n.trim().parse().map_err(|_| bad(format!("'{n}' is not a count")))?;
            let size = s.trim().parse().map_err(|_| bad(format!("'{s}' is not a size")))?;
            let (min_scale, max_scale) = if i == 0 { (0.14, 1.0) } else { (0.05, 0.14) };
            out.push(CropConfig { count, size, min_scale, max_scale });
        }
        Ok(out)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AugmentConfig {
    pub crops: Vec<CropConfig>,
    pub flip: f64,
    pub jitter_strength: f64,
    pub hue: f64,
    pub p_jitter: f64,
    pub p_gray: f64,
    pub p_blur: f64,
}

impl AugmentConfig {
    pub fn new(crops: &[CropConfig]) -> Self {
        AugmentConfig {
            crops: crops.to_vec(),
            flip: 0.5,
            jitter_strength: 0.8,
            hue: 0.2,
            p_jitter: 0.8,
            p_gray: 0.2,
            p_blur: 0.5,
        }
    }
}

/// torchvision's RandomResizedCrop window: (x, y, w, h) in source pixels.
pub fn random_resized_crop_box(width: usize, height: usize, scale: (f64, f64), rng: &mut Rng) -> (f64, f64, f64, f64) {
    let area = (width * height) as f64;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.range(scale.0, scale.1);
        let ratio = rng.range(lo, hi).exp();
        let w = (target * ratio).sqrt().round();
        let h = (target / ratio).sqrt().round();
        if w >= 1.0 && h >= 1.0 && w <= width as f64 && h <= height as f64 {
            let x = rng.range(0.0, width as f64 - w + 1.0).floor();
            let y = rng.range(0.0, height as f64 - h + 1.0).floor();
            return (x, y, w, h);
        }
    }
    // Fallback: the central crop at the clamped aspect ratio.
    let (w, h) = (width as f64, height as f64);
    let (w, h) = if w / h < 0.75 {
        (w, w / 0.75)
    } else if w / h > 4.0 / 3.0 {
        (h * 4.0 / 3.0, h)
    } else {
        (w, h)
    };
    ((width as f64 - w) / 2.0, (height as f64 - h) / 2.0, w, h)
}

/// u8 -> [0, 1]: the same value as `v as f32 / 255.0`, without the division per read.
fn unit_lut() -> &'static [f32; 256] {
    static LUT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|v| v as f32 / 255.0))
}

/// Source sample positions along one axis: (first index, second index, weight of the second),
/// the pixel centres of `size` outputs over [start, start + len) clamped to the image.
fn taps(start: f64, len: f64, size: usize, limit: usize) -> Vec<(usize, usize, f32)> {
    (0..size)
        .map(|o| {
            let s = (start + (o as f64 + 0.5) * len / size as f64 - 0.5).clamp(0.0, (limit - 1) as f64);
            let (i, f) = (s.floor() as usize, (s - s.floor()) as f32);
            (i, (i + 1).min(limit - 1), f)
        })
        .collect()
}

/// Bilinear resample of the window into size x size, HWC floats in [0, 1]. The taps are
/// computed once per row and column (the hot loop only blends).
fn resample(img: &Image, (x0, y0, w, h): (f64, f64, f64, f64), size: usize) -> Vec<[f32; 3]> {
    let lut = unit_lut();
    let cols = taps(x0, w, size, img.width);
    let stride = img.width * 3;
    let mut out = Vec::with_capacity(size * size);
    for (y1, y2, fy) in taps(y0, h, size, img.height) {
        let (r1, r2) = (&img.rgb[y1 * stride..][..stride], &img.rgb[y2 * stride..][..stride]);
        for &(x1, x2, fx) in &cols {
            let (a, b) = (x1 * 3, x2 * 3);
            out.push(std::array::from_fn(|c| {
                let top = lut[r1[a + c] as usize] * (1.0 - fx) + lut[r1[b + c] as usize] * fx;
                let bottom = lut[r2[a + c] as usize] * (1.0 - fx) + lut[r2[b + c] as usize] * fx;
                top * (1.0 - fy) + bottom * fy
            }));
        }
    }
    out
}

fn gray(p: &[f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

// The two conversions are written without branches (every case computed, one selected) so
// the hue loop vectorises; each case is the same arithmetic as the textbook branches, so the
// results are bit for bit those of the branching form.
fn rgb_to_hsv([r, g, b]: [f32; 3]) -> [f32; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    // (g - b) / d is in [-1, 1], where rem_euclid(6) is this select (and no fmod call).
    let x = (g - b) / d;
    let from_r = (if x < 0.0 { x + 6.0 } else { x }) / 6.0;
    let from_g = ((b - r) / d + 2.0) / 6.0;
    let from_b = ((r - g) / d + 4.0) / 6.0;
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        from_r
    } else if max == g {
        from_g
    } else {
        from_b
    };
    let s = if max == 0.0 { 0.0 } else { d / max };
    [h, s, max]
}

fn hsv_to_rgb([h, s, v]: [f32; 3]) -> [f32; 3] {
    // h - floor(h) is h.rem_euclid(1.0) exactly (the fractional part is representable, and a
    // negative h's +1 is one rounding either way), without the fmod call.
    let h6 = (h - h.floor()) * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    // Sector i: [v,t,p], [q,v,p], [p,v,t], [p,q,v], [t,p,v], else [v,p,q].
    let i = i as i32;
    let r = if i == 1 {
        q
    } else if i == 2 || i == 3 {
        p
    } else if i == 4 {
        t
    } else {
        v
    };
    let g = if i == 0 {
        t
    } else if i == 1 || i == 2 {
        v
    } else if i == 3 {
        q
    } else {
        p
    };
    let b = if i == 0 || i == 1 {
        p
    } else if i == 2 {
        t
    } else if i == 3 || i == 4 {
        v
    } else {
        q
    };
    [r, g, b]
}

/// torchvision ColorJitter: brightness, contrast, saturation, hue in a random order.
fn color_jitter(px: &mut [[f32; 3]], strength: f64, hue: f64, rng: &mut Rng) {
    let mut order = [0, 1, 2, 3];
    rng.shuffle(&mut order);
    let factor = |rng: &mut Rng| rng.range((1.0 - strength).max(0.0), 1.0 + strength) as f32;
    for op in order {
        match op {
            0 => {
                let f = factor(rng);
                px.iter_mut().flatten().for_each(|v| *v = (*v * f).clamp(0.0, 1.0));
            }
            1 => {
                let f = factor(rng);
                let mean = px.iter().map(gray).sum::<f32>() / px.len() as f32;
                px.iter_mut().flatten().for_each(|v| *v = (mean + (*v - mean) * f).clamp(0.0, 1.0));
            }
            2 => {
                let f = factor(rng);
                for p in px.iter_mut() {
                    let g = gray(p);
                    p.iter_mut().for_each(|v| *v = (g + (*v - g) * f).clamp(0.0, 1.0));
                }
            }
            _ => {
                let shift = rng.range(-hue, hue) as f32;
                for p in px.iter_mut() {
                    let mut hsv = rgb_to_hsv(*p);
                    hsv[0] += shift;
                    *p = hsv_to_rgb(hsv);
                }
            }
        }
    }
}

/// Separable Gaussian blur with sigma in [0.1, 2.0] (the official PIL blur), edges clamped.
/// Taps are summed in kernel order; only the border pixels pay for the clamping.
fn gaussian_blur(px: &mut [[f32; 3]], size: usize, rng: &mut Rng) {
    let sigma = rng.range(0.1, 2.0);
    let radius = ((2.0 * sigma).ceil() as usize).min(size / 2).max(1);
    let kernel: Vec<f32> = (0..=2 * radius)
        .map(|i| (-((i as f64 - radius as f64).powi(2)) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let norm: f32 = kernel.iter().sum();
    let mut tmp = vec![[0.0f32; 3]; px.len()];
    // One pass along an axis: output i of a line of `size` pixels `step` apart.
    let pass = |src: &[[f32; 3]], dst: &mut [[f32; 3]], line: usize, step: usize, across: usize| {
        for i in 0..size {
            let mut acc = [0.0f32; 3];
            let interior = i >= radius && i + radius < size;
            for (t, k) in kernel.iter().enumerate() {
                let j = if interior {
                    i + t - radius
                } else {
                    (i as isize + t as isize - radius as isize).clamp(0, size as isize - 1) as usize
                };
                let p = src[line * across + j * step];
                for c in 0..3 {
                    acc[c] += k * p[c];
                }
            }
            dst[line * across + i * step] = acc.map(|v| v / norm);
        }
    };
    for y in 0..size {
        pass(px, &mut tmp, y, 1, size);
    }
    for x in 0..size {
        pass(&tmp, px, x, size, 1);
    }
}

/// One augmented, normalised crop (CHW, size x size) of `img`.
pub fn crop(img: &Image, crop: &CropConfig, cfg: &AugmentConfig, rng: &mut Rng) -> Vec<f32> {
    let window = random_resized_crop_box(img.width, img.height, (crop.min_scale, crop.max_scale), rng);
    let size = crop.size;
    let mut px = resample(img, window, size);
    if rng.uniform() < cfg.flip {
        for row in px.chunks_mut(size) {
            row.reverse();
        }
    }
    if rng.uniform() < cfg.p_jitter {
        color_jitter(&mut px, cfg.jitter_strength, cfg.hue, rng);
    }
    if rng.uniform() < cfg.p_gray {
        px.iter_mut().for_each(|p| *p = [gray(p); 3]);
    }
    if rng.uniform() < cfg.p_blur {
        gaussian_blur(&mut px, size, rng);
    }
    normalize(&px, size)
}

fn normalize(px: &[[f32; 3]], size: usize) -> Vec<f32> {
    let n = size * size;
    let mut out = vec![0.0; 3 * n];
    for (i, p) in px.iter().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (p[c] - MEAN[c]) / STD[c];
        }
    }
    out
}

/// Every crop of one sample, in config order (large crops first).
pub fn multicrop(img: &Image, cfg: &AugmentConfig, rng: &mut Rng) -> Vec<Vec<f32>> {
    cfg.crops.iter().flat_map(|c| std::iter::repeat_n(c, c.count)).map(|c| crop(img, c, cfg, rng)).collect()
}

/// The evaluation view: the whole image resized to size x size (bilinear), normalised.
/// The whole image resized to size x size, as RGBA bytes (thumbnails on the demo page).
pub fn thumbnail_rgba(img: &Image, size: usize) -> Vec<u8> {
    let px = resample(img, (0.0, 0.0, img.width as f64, img.height as f64), size);
    px.iter()
        .flat_map(|p| [p[0], p[1], p[2]].map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).into_iter().chain([255]))
        .collect()
}

pub fn eval_view(img: &Image, size: usize) -> Vec<f32> {
    let px = resample(img, (0.0, 0.0, img.width as f64, img.height as f64), size);
    normalize(&px, size)
}
