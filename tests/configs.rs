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
