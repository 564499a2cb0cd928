//! The data pipeline: augmented multi-crop samples per second on 2 CPU workers (rayon), for
//! the `swav-wgpu train` defaults on the built-in dataset. Compare with the training-step
//! rate of benches/train_step.rs: augmentation must never be what bounds training.
use std::time::Instant;

use swav_wgpu::data::loader::{epoch_order, make_batch};
use swav_wgpu::data::synthetic;

fn main() {
    let workers = 2;
    rayon::ThreadPoolBuilder::new().num_threads(workers).build_global().expect("rayon pool");
    let cfg = swav_wgpu::train::config::small_data_defaults();
    let ds = synthetic::builtin().train;
    let aug = cfg.augment();
    let order = epoch_order(ds.len(), 0, 0);
    let batch = cfg.batch_size;
    let _ = make_batch(&ds, &order[..batch], &aug, 0, 0);
    let mut rates = Vec::new();
    for rep in 0..5 {
        let t = Instant::now();
        let n = 8;
        for b in 0..n {
            let s = ((rep * n + b) * batch) % (ds.len() - batch);
            let _ = make_batch(&ds, &order[s..s + batch], &aug, 0, 0);
        }
        rates.push((n * batch) as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    let crops = cfg.crops.iter().map(|c| format!("{}x{}", c.count, c.size)).collect::<Vec<_>>().join("+");
    println!("data pipeline: {:.0} augmented samples/s (crops {crops}, {workers} workers, median of 5)", rates[2]);
}
