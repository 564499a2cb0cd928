//! The pinned configs say what the code does: configs/cifar10.toml is the natural-image
//! default recipe key for key, so the PyTorch twin and `swav-wgpu train --data X` run the same.
use swav_wgpu::train::config::natural_image_defaults;
use swav_wgpu::train::TrainConfig;

#[test]
fn cifar10_toml_is_the_natural_image_default() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/cifar10.toml")).unwrap();
    let pinned = TrainConfig::from_toml(&text).unwrap();
    assert_eq!(pinned, natural_image_defaults());
    // Every key written out (the twin fills missing keys from TrainConfig::default()).
    let table: toml::Table = text.parse().unwrap();
    let all = toml::Table::try_from(natural_image_defaults()).unwrap();
    for key in all.keys() {
        assert!(table.contains_key(key), "configs/cifar10.toml lacks '{key}'");
    }
}

/// ResNet-18 + head forward FLOPs for one square image, counted here from the layer formulas
/// (independently of the graph), to check `forward_flops_per_image`.
fn resnet18_flops_by_hand(width: f32, stem: &str, size: usize, hidden: usize, dim: usize, k: usize) -> f64 {
    let scaled = |c: usize| ((c as f32 * width).round() as usize).max(1);
    let conv = |cin: usize, cout: usize, kk: usize, out: usize| 2.0 * (cout * out * out * cin * kk * kk) as f64;
    let c0 = scaled(64);
    let (mut flops, mut hw) = match stem {
        "imagenet" => (conv(3, c0, 7, size / 2), size / 4),
        "cifar_pool" => (conv(3, c0, 3, size), size / 2),
        _ => (conv(3, c0, 3, size), size),
    };
    let mut cin = c0;
    for (layer, base) in [64, 128, 256, 512].into_iter().enumerate() {
        let planes = scaled(base);
        for block in 0..2 {
            let stride = if block == 0 && layer > 0 { 2 } else { 1 };
            let out = hw.div_ceil(stride);
            flops += conv(cin, planes, 3, out) + conv(planes, planes, 3, out);
            if stride != 1 || cin != planes {
                flops += conv(cin, planes, 1, out);
            }
            cin = planes;
            hw = out;
        }
    }
    flops + 2.0 * (cin * hidden + hidden * dim + dim * k) as f64
}

#[test]
fn flop_count_matches_the_layer_formulas() {
    for (width, stem) in [(0.25, "imagenet"), (0.23, "cifar_pool"), (0.125, "cifar")] {
        let cfg = TrainConfig { width, stem: stem.parse().unwrap(), ..natural_image_defaults() };
        let counted = cfg.forward_flops_per_image().unwrap();
        let by_hand = 2.0 * resnet18_flops_by_hand(width, stem, 32, 512, 128, 512);
        assert!((counted - by_hand).abs() <= 1e-9 * by_hand, "{stem} x{width}: graph {counted} vs formulas {by_hand}");
    }
}

/// The natural-image budget (issue 18): at most 3x the forward FLOPs per image of ResNet-18
/// x0.25 with the ImageNet stem on 2x32 crops.
#[test]
fn natural_image_defaults_fit_the_flop_budget() {
    let defaults = natural_image_defaults();
    let reference = TrainConfig { width: 0.25, stem: swav_wgpu::model::Stem::ImageNet, ..natural_image_defaults() };
    let ratio = defaults.forward_flops_per_image().unwrap() / reference.forward_flops_per_image().unwrap();
    eprintln!("natural-image defaults: {ratio:.2}x the forward FLOPs of R18 x0.25 (ImageNet stem, 2x32)");
    assert!(ratio <= 3.0, "natural-image defaults cost {ratio:.2}x the reference, over the 3x budget");
}

/// benches/gpu/NAME.toml is `bench::step_configs()`'s NAME key for key, so the PyTorch twin
/// (benches/gpu/run.sh) times the same steps as `swav-wgpu bench`.
#[test]
fn gpu_bench_tomls_are_the_bench_step_configs() {
    for (name, cfg) in swav_wgpu::bench::step_configs() {
        let path = format!("{}/benches/gpu/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(TrainConfig::from_toml(&text).unwrap(), cfg, "{path} differs from bench::step_configs()");
        let table: toml::Table = text.parse().unwrap();
        for key in toml::Table::try_from(&cfg).unwrap().keys() {
            assert!(table.contains_key(key), "{path} lacks '{key}'");
        }
    }
}

/// configs/imagenet.toml is the paper's recipe (main_swav.py and the official scripts), every
/// key written out, the learning rates scaled from 4096 images to its 64.
#[test]
fn imagenet_toml_is_the_papers_recipe() {
    use swav_wgpu::model::{Arch, Stem};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/imagenet.toml")).unwrap();
    let c = TrainConfig::from_toml(&text).unwrap();
    c.validate().unwrap();
    assert_eq!((c.arch, c.width, c.stem), (Arch::ResNet50, 1.0, Stem::ImageNet));
    assert_eq!((c.hidden_mlp, c.feat_dim, c.prototypes, c.batch_size), (2048, 128, 3000, 64));
    let crops: Vec<(usize, usize, f64, f64)> =
        c.crops.iter().map(|k| (k.count, k.size, k.min_scale, k.max_scale)).collect();
    assert_eq!(crops, vec![(2, 224, 0.14, 1.0), (6, 96, 0.05, 0.14)]);
    assert_eq!(c.crops_for_assign, vec![0, 1]);
    assert_eq!((c.temperature, c.epsilon, c.sinkhorn_iterations), (0.1, 0.05, 3));
    assert_eq!((c.queue_length, c.epoch_queue_starts, c.freeze_prototypes_niters), (3840, 15, 313));
    assert_eq!(c.optimizer, swav_wgpu::optim::OptimizerKind::Lars);
    assert_eq!((c.weight_decay, c.momentum, c.trust_coefficient), (1e-6, 0.9, 0.001));
    let scale = 64.0 / 4096.0;
    for (got, at_4096) in [(c.lr, 4.8), (c.final_lr, 0.0048), (c.start_warmup, 0.3)] {
        assert!((got - at_4096 * scale).abs() <= 1e-3 * at_4096 * scale, "{got} vs {} x 64/4096", at_4096);
    }
    assert_eq!(c.warmup_epochs, 10.0);
    assert_eq!(c.precision, swav_wgpu::train::config::Precision::F16, "the scripts train in fp16 (apex)");
    let table: toml::Table = text.parse().unwrap();
    for key in toml::Table::try_from(TrainConfig::default()).unwrap().keys() {
        assert!(table.contains_key(key), "configs/imagenet.toml lacks '{key}'");
    }
}
