//! Writes a PNG grid of augmented multi-crops of the built-in dataset (one row per image:
//! the original, then each crop), to check the augmentation by eye: cargo run --release
//! --example dump_crops -- OUT.png [CONFIG.toml]
use swav_wgpu::data::augment::multicrop;
use swav_wgpu::data::{synthetic, MEAN, STD};
use swav_wgpu::rng::Rng;

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "crops.png".into());
    let mut cfg = swav_wgpu::train::config::small_data_defaults();
    if let Some(path) = std::env::args().nth(2) {
        // Optional: a TOML file of config keys over the defaults (as `train --config`).
        let text = std::fs::read_to_string(path).expect("read the config");
        cfg = cfg.with_toml(&text).expect("config");
    }
    let aug = cfg.augment();
    let ds = synthetic::builtin().train;
    let cell = 34;
    let cols = 1 + cfg.n_crops();
    let rows = 10;
    let mut img = image::RgbImage::new((cols * cell) as u32, (rows * cell) as u32);
    for r in 0..rows {
        let src = &*ds.image(r).expect("a built-in image");
        for y in 0..src.height {
            for x in 0..src.width {
                let p = &src.rgb[(y * src.width + x) * 3..][..3];
                img.put_pixel(x as u32, (r * cell + y) as u32, image::Rgb([p[0], p[1], p[2]]));
            }
        }
        for (c, crop) in multicrop(src, &aug, &mut Rng::derive(0, 1, r as u64)).iter().enumerate() {
            let size = ((crop.len() / 3) as f64).sqrt() as usize;
            for y in 0..size {
                for x in 0..size {
                    let v: Vec<u8> = (0..3)
                        .map(|ch| {
                            ((crop[ch * size * size + y * size + x] * STD[ch] + MEAN[ch]).clamp(0.0, 1.0) * 255.0) as u8
                        })
                        .collect();
                    img.put_pixel(((c + 1) * cell + x) as u32, (r * cell + y) as u32, image::Rgb([v[0], v[1], v[2]]));
                }
            }
        }
    }
    img.save(&out).expect("write png");
    println!("wrote {out}");
}
