//! Writes a folder of procedural photos (`swav_wgpu::testing::photo`) for trying the dataset
//! cache and the loader benchmark without downloads:
//! `cargo run --release --example make_photos -- DIR CLASSES PER_CLASS WxH[,WxH...] [SEED]`
//! (CLASSES 0 = a flat folder of PER_CLASS unlabeled images).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: make_photos DIR CLASSES PER_CLASS WxH[,WxH...] [SEED]");
        std::process::exit(2);
    }
    let number = |s: &str| -> usize {
        s.parse().unwrap_or_else(|_| {
            eprintln!("'{s}' is not a number");
            std::process::exit(2)
        })
    };
    let sizes: Vec<(u32, u32)> = args[3]
        .split(',')
        .map(|s| {
            let (w, h) = s.split_once('x').unwrap_or_else(|| {
                eprintln!("'{s}' is not WxH");
                std::process::exit(2)
            });
            (number(w) as u32, number(h) as u32)
        })
        .collect();
    let seed = args.get(4).map_or(0, |s| number(s) as u64);
    let dir = std::path::Path::new(&args[0]);
    let files = swav_wgpu::testing::write_photo_folder(dir, number(&args[1]), number(&args[2]), &sizes, seed);
    let bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    println!("{} photos, {:.1} MB, in {}", files.len(), bytes as f64 / 1e6, dir.display());
}
