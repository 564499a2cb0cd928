//! The front door under random input: config TOML (non-UTF-8 text included), CIFAR records,
//! image bytes, checkpoint files and their metadata (re-encoded with valid checksums, so the
//! parsing behind them is reached), each mutated 10,000 times from valid seeds (byte flips,
//! interesting bytes and numbers, cuts, duplications, insertions; seeded, so a failure
//! reproduces); and `load_checkpoint` on the GPU, 300 cases each of mutated bytes and
//! metadata. Every case must come back as Ok or an error naming the input, never a panic, and
//! the mutations must reach both outcomes.
use std::collections::{BTreeMap, HashMap};
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

/// Runs `f` on CASES mutations of the seeds. Each case must come back as Ok or as an error
/// whose text contains `names` (the input's name, so a user learns which file is at fault),
/// never a panic; and the mutations must reach both outcomes (else they test one path only).
/// Panics name the first input at fault. Returns (accepted, refused).
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    tokens: &[&[u8]],
    names: &str,
    f: impl FnMut(&[u8]) -> Result<(), String>,
) -> (usize, usize) {
    fuzz_n(CASES, name, seeds, tokens, names, f)
}

/// `fuzz` with `cases` cases.
fn fuzz_n(
    cases: usize,
    name: &str,
    seeds: &[Vec<u8>],
    tokens: &[&[u8]],
    names: &str,
    mut f: impl FnMut(&[u8]) -> Result<(), String>,
) -> (usize, usize) {
    let mut rng = Rng::new(0xF022 ^ name.len() as u64);
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases {
        let seed = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, seed, tokens);
        let shown = || String::from_utf8_lossy(&input[..input.len().min(400)]).into_owned();
        match catch_unwind(AssertUnwindSafe(|| f(&input))) {
            Err(_) => panic!("{name}: case {case} panicked on input {:?}", shown()),
            Ok(Ok(())) => accepted += 1,
            Ok(Err(e)) => {
                assert!(e.contains(names), "{name}: case {case}: the error does not name '{names}': {e}");
                refused += 1;
            }
        }
    }
    assert!(accepted > 0 && refused > 0, "{name}: {accepted} accepted, {refused} refused: one path untested");
    (accepted, refused)
}

#[test]
fn config_toml_never_panics_and_names_bad_numbers() {
    let seeds = vec![
        TrainConfig::default().to_toml().into_bytes(),
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/cifar10.toml")).expect("configs/cifar10.toml"),
    ];
    let tokens: &[&[u8]] =
        &[b"nan", b"inf", b"-inf", b"-1", b"0", b"1e400", b"18446744073709551616", b"\"x\"", b"[]", b"{}", b"true"];
    let mut not_utf8 = 0;
    let (accepted, _) = fuzz("config", &seeds, tokens, "config", |bytes| {
        // As `train --config` reads a file: bytes that are no UTF-8 text are an error too.
        let text = std::str::from_utf8(bytes).map_err(|e| {
            not_utf8 += 1;
            format!("invalid config: not UTF-8 text: {e}")
        })?;
        let cfg = TrainConfig::from_toml(text).map_err(|e| e.to_string())?;
        // validate's errors name the key, not the file: the caller adds "--config 'FILE'".
        cfg.validate().map_err(|e| format!("config: {e}"))?;
        let _ = (cfg.augment(), cfg.swav());
        cfg.forward_flops_per_image().map_err(|e| format!("config: {e}"))?;
        Ok(())
    });
    assert!(accepted > 100, "the mutations should leave some configs valid ({accepted})");
    assert!(not_utf8 > 10, "the mutations should reach non-UTF-8 text ({not_utf8})");
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
    fuzz("cifar", &[seed], &[&[10], &[255], &[0; 3073]], "fuzz.bin", |bytes| {
        let (images, labels) = cifar::parse(bytes, "fuzz.bin").map_err(|e| e.to_string())?;
        assert_eq!(images.len(), labels.len());
        assert!(labels.iter().all(|&l| l <= 9));
        Ok(())
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
    fuzz("image", &seeds, &[b"IHDR", b"\xff\xd8", b"BM", &[0xff; 4]], "fuzz", |bytes| {
        let img = folder::decode_bytes(bytes, "fuzz", 64).map_err(|e| e.to_string())?;
        assert_eq!(img.rgb.len(), img.width * img.height * 3);
        assert!(img.width.min(img.height) <= 64 || img.width.min(img.height) == 0);
        Ok(())
    });
}

/// A tiny model's config (the GPU fuzz builds its trainer).
fn tiny_config() -> TrainConfig {
    TrainConfig {
        width: 0.0625,
        prototypes: 8,
        feat_dim: 8,
        hidden_mlp: 16,
        batch_size: 4,
        crops: swav_wgpu::train::CropConfig::parse_groups("2x16").expect("crops"),
        crops_for_assign: vec![0, 1],
        ..swav_wgpu::train::config::small_data_defaults()
    }
}

/// A checkpoint as `train` writes it (format 2, both checksums) of `tiny_config`, without a
/// GPU: its metadata, and tensors of the given names and shapes filled with a ramp.
fn checkpoint_bytes(meta: &HashMap<String, String>, tensors: &BTreeMap<String, Vec<usize>>) -> Vec<u8> {
    let out: BTreeMap<String, OutTensor> = tensors
        .iter()
        .map(|(k, shape)| {
            let n = shape.iter().product::<usize>();
            (k.clone(), OutTensor::F32 { shape: shape.clone(), data: (0..n).map(|i| i as f32 * 1e-3).collect() })
        })
        .collect();
    io::encode_safetensors(&out, meta.clone()).expect("encode")
}

/// The metadata a checkpoint of `cfg` at iteration 3 carries.
fn checkpoint_meta_of(cfg: &TrainConfig) -> HashMap<String, String> {
    [
        ("format", "swav-wgpu-checkpoint/2".to_string()),
        ("iteration", "3".into()),
        ("iters_per_epoch", "4".into()),
        ("rng_state", "0".into()),
        ("world", "1".into()),
        ("config", cfg.to_toml()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

const META_KEYS: [&str; 6] = ["format", "iteration", "iters_per_epoch", "rng_state", "world", "config"];

/// The metadata values joined by 0x1e (a field per key of META_KEYS): a mutation edits
/// values, joins or splits them (a key missing, or one too many), and re-encoding gives the
/// file valid checksums, so the parsing behind them is reached.
fn meta_from_fields(bytes: &[u8]) -> HashMap<String, String> {
    bytes
        .split(|&b| b == 0x1e)
        .zip(META_KEYS)
        .map(|(v, k)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn meta_fields(meta: &HashMap<String, String>) -> Vec<u8> {
    META_KEYS.iter().map(|k| meta[*k].as_bytes()).collect::<Vec<_>>().join(&0x1e)
}

#[test]
fn checkpoint_metadata_gives_a_clear_error_never_a_panic() {
    let dir = std::env::temp_dir().join(format!("swav-wgpu-fuzz-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checkpoint.safetensors");
    let cfg = tiny_config();
    let tensors: BTreeMap<String, Vec<usize>> = [("conv1.weight".to_string(), vec![2, 3, 3, 3])].into();
    let seed = meta_fields(&checkpoint_meta_of(&cfg));
    let tokens: &[&[u8]] = &[b"\x1e", b"-1", b"18446744073709551616", b"nan", b"swav-wgpu-checkpoint/1", b"width = 0"];
    let name = file.display().to_string();
    fuzz("checkpoint metadata", &[seed], tokens, &name, |bytes| {
        std::fs::write(&file, checkpoint_bytes(&meta_from_fields(bytes), &tensors)).unwrap();
        let meta = swav_wgpu::train::Trainer::checkpoint_meta(&file).map_err(|e| e.to_string())?;
        meta.config.validate().map_err(|e| format!("{name}: {e}"))?;
        Ok(())
    });
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoint_files_never_panic() {
    let dir = std::env::temp_dir().join(format!("swav-wgpu-fuzz-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checkpoint.safetensors");
    let name = file.display().to_string();
    let tensors: BTreeMap<String, Vec<usize>> =
        [("conv1.weight".to_string(), vec![2, 3, 3, 3]), ("bn1.num_batches_tracked".to_string(), vec![])].into();
    let seed = checkpoint_bytes(&checkpoint_meta_of(&tiny_config()), &tensors);
    assert!(io::parse_safetensors(&seed).is_ok());
    let tokens: &[&[u8]] = &[b"{", b"\"dtype\":\"F64\"", b"\"shape\":[9999999999]", &[0xff; 8]];
    // The files `--resume`, eval and embed open: the metadata, then the tensors.
    fuzz("checkpoint", &[seed], tokens, &name, |bytes| {
        std::fs::write(&file, bytes).unwrap();
        swav_wgpu::train::Trainer::checkpoint_meta(&file).map_err(|e| e.to_string())?;
        let t = io::load_safetensors(&file).map_err(|e| e.to_string())?;
        for v in t.values() {
            assert_eq!(v.data.len(), v.shape.iter().product::<usize>());
        }
        Ok(())
    });
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn load_checkpoint_gives_a_clear_error_never_a_panic() {
    let gpu = match swav_wgpu::gpu::Gpu::from_env_blocking() {
        Ok(g) => g,
        Err(e) if !swav_wgpu::testing::in_ci() => return eprintln!("SKIPPING: no adapter ({e})"),
        Err(e) => panic!("CI must have an adapter: {e}"),
    };
    let dir = std::env::temp_dir().join(format!("swav-wgpu-fuzz-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checkpoint.safetensors");
    let name = file.display().to_string();
    let mut trainer = swav_wgpu::train::Trainer::new(gpu, tiny_config(), 4).expect("trainer");
    trainer.init_random(0).expect("init");
    trainer.save_checkpoint(&file, 0, &HashMap::new()).expect("save");
    let real = std::fs::read(&file).unwrap();
    trainer.load_checkpoint(&file).expect("its own checkpoint loads");
    // Mutated bytes of a real checkpoint, and real tensors under mutated metadata (valid
    // checksums): a few hundred each, as every load writes the model's tensors to the GPU.
    let shapes: BTreeMap<String, Vec<usize>> =
        io::load_safetensors(&file).unwrap().into_iter().map(|(k, v)| (k, v.shape)).collect();
    let meta = io::read_metadata(&file).unwrap();
    let mut load = |bytes: Vec<u8>| {
        std::fs::write(&file, bytes).unwrap();
        trainer.load_checkpoint(&file).map(|_| ()).map_err(|e| e.to_string())
    };
    fuzz_n(300, "load_checkpoint bytes", std::slice::from_ref(&real), &[&[0xff; 8], b"{"], &name, |b| load(b.to_vec()));
    let seed = meta_fields(&meta);
    fuzz_n(300, "load_checkpoint metadata", &[seed], &[b"\x1e", b"-1", b"width = 0.125"], &name, |b| {
        load(checkpoint_bytes(&meta_from_fields(b), &shapes))
    });
    std::fs::remove_dir_all(&dir).ok();
}
