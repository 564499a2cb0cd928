//! The front door under random input: config TOML, CIFAR records, image bytes and checkpoint
//! files, each mutated 10,000 times from valid seeds (byte flips, interesting bytes and
//! numbers, cuts, duplications, insertions; seeded, so a failure reproduces). Every case must
//! come back as Ok or a clear Err, never a panic. CPU only.
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use swav_wgpu::data::{cifar, folder};
use swav_wgpu::io::{self, OutTensor};
use swav_wgpu::rng::Rng;
use swav_wgpu::train::TrainConfig;

const CASES: usize = 10_000;

fn pick(rng: &mut Rng, n: usize) -> usize {
    ((rng.uniform() * n as f64) as usize).min(n.saturating_sub(1))
}

/// One to four random edits of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + pick(rng, 4) {
        let at = pick(rng, v.len() + 1);
        match pick(rng, 7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << pick(rng, 8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'[', b'=', b'\n', b'9'][pick(rng, 9)];
            }
            2 => {
                let end = (at + pick(rng, 64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + pick(rng, 64)).min(v.len());
                let dup = v[at.min(end)..end].to_vec();
                v.splice(at..at, dup);
            }
            4 => v.truncate(at),
            5 if !tokens.is_empty() => {
                let t = tokens[pick(rng, tokens.len())];
                v.splice(at..at, t.iter().copied());
            }
            _ => {
                let n = pick(rng, 8);
                let bytes: Vec<u8> = (0..n).map(|_| pick(rng, 256) as u8).collect();
                v.splice(at..at, bytes);
            }
        }
    }
    v
}

/// Runs `f` on CASES mutations of the seeds; panics name the first input that panicked.
fn fuzz(name: &str, seeds: &[Vec<u8>], tokens: &[&[u8]], mut f: impl FnMut(&[u8])) {
    let mut rng = Rng::new(0xF022 ^ name.len() as u64);
    let mut oks = 0;
    for case in 0..CASES {
        let seed = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, seed, tokens);
        let r = catch_unwind(AssertUnwindSafe(|| f(&input)));
        assert!(
            r.is_ok(),
            "{name}: case {case} panicked on input {:?}",
            String::from_utf8_lossy(&input[..input.len().min(400)])
        );
        oks += 1;
    }
    assert_eq!(oks, CASES);
}

#[test]
fn config_toml_never_panics_and_names_bad_numbers() {
    let seeds = vec![
        TrainConfig::default().to_toml().into_bytes(),
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/cifar10.toml")).expect("configs/cifar10.toml"),
    ];
    let tokens: &[&[u8]] =
        &[b"nan", b"inf", b"-inf", b"-1", b"0", b"1e400", b"18446744073709551616", b"\"x\"", b"[]", b"{}", b"true"];
    let mut accepted = 0;
    fuzz("config", &seeds, tokens, |bytes| {
        let Ok(text) = std::str::from_utf8(bytes) else { return };
        let Ok(cfg) = TrainConfig::from_toml(text) else { return };
        if cfg.validate().is_ok() {
            accepted += 1;
            let _ = cfg.augment();
            let _ = cfg.swav();
            let _ = cfg.forward_flops_per_image();
        }
    });
    assert!(accepted > 100, "the mutations should leave some configs valid ({accepted})");
    // A NaN learning rate is reported as NaN, by name.
    let e = TrainConfig::from_toml("lr = nan").and_then(|c| c.validate()).expect_err("refused").to_string();
    assert!(e.contains("lr") && e.contains("NaN"), "{e}");
    let e = TrainConfig::from_toml("epsilon = nan").and_then(|c| c.validate()).expect_err("refused").to_string();
    assert!(e.contains("epsilon") && e.contains("NaN"), "{e}");
}

#[test]
fn cifar_records_never_panic() {
    // Two records: labels 3 and 7, pixels a gradient.
    let mut seed = Vec::new();
    for label in [3u8, 7] {
        seed.push(label);
        seed.extend((0..3072).map(|i| (i % 251) as u8));
    }
    fuzz("cifar", &[seed], &[&[10], &[255], &[0; 3073]], |bytes| {
        if let Ok((images, labels)) = cifar::parse(bytes, "fuzz.bin") {
            assert_eq!(images.len(), labels.len());
            assert!(labels.iter().all(|&l| l <= 9));
        }
    });
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(20, 12, |x, y| image::Rgb([(x * 12) as u8, (y * 20) as u8, ((x + y) * 7) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

#[test]
fn image_bytes_never_panic() {
    let seeds =
        vec![encoded(image::ImageFormat::Png), encoded(image::ImageFormat::Jpeg), encoded(image::ImageFormat::Bmp)];
    fuzz("image", &seeds, &[b"IHDR", b"\xff\xd8", b"BM", &[0xff; 4]], |bytes| {
        if let Ok(img) = folder::decode_bytes(bytes, "fuzz", 64) {
            assert_eq!(img.rgb.len(), img.width * img.height * 3);
            assert!(img.width.min(img.height) <= 64 || img.width.min(img.height) == 0);
        }
    });
}

#[test]
fn checkpoint_files_never_panic() {
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "conv1.weight".to_string(),
        OutTensor::F32 { shape: vec![2, 3, 3, 3], data: (0..54).map(|i| i as f32).collect() },
    );
    tensors.insert("bn1.num_batches_tracked".to_string(), OutTensor::I64 { shape: vec![], data: vec![7] });
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "swav-wgpu-checkpoint/1".to_string());
    meta.insert("iteration".to_string(), "3".to_string());
    meta.insert("config".to_string(), TrainConfig::default().to_toml());
    let seed = io::encode_safetensors(&tensors, meta).expect("encode");
    assert!(io::parse_safetensors(&seed).is_ok());
    fuzz("checkpoint", &[seed], &[b"{", b"\"dtype\":\"F64\"", b"\"shape\":[9999999999]", &[0xff; 8]], |bytes| {
        if let Ok(t) = io::parse_safetensors(bytes) {
            for v in t.values() {
                assert_eq!(v.data.len(), v.shape.iter().product::<usize>());
            }
        }
        if let Ok((_, m)) = safetensors::SafeTensors::read_metadata(bytes) {
            if let Some(text) = m.metadata().as_ref().and_then(|m| m.get("config")) {
                let _ = TrainConfig::from_toml(text).and_then(|c| c.validate());
            }
        }
    });
}
