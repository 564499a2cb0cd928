//! Datasets and augmentation: CIFAR binary parsing, ImageFolder decoding (real JPEGs from the
//! shared CIFAR-10 archive), agreement of the two on the same image, the built-in dataset,
//! and deterministic multi-crop augmentation.
use std::path::{Path, PathBuf};

use swav_wgpu::data::augment::{multicrop, AugmentConfig};
use swav_wgpu::data::{self, cifar, folder, synthetic};
use swav_wgpu::rng::Rng;
use swav_wgpu::train::CropConfig;

fn shared() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10");
    assert!(dir.exists(), "CIFAR-10 data missing: expected {} (the shared/ folder beside the repo)", dir.display());
    dir
}

/// Opening options at 64 px with the dataset caches in `dir`/cache (not the user's).
fn opts(dir: &Path) -> data::OpenOptions {
    data::OpenOptions { max_side: 64, cache_dir: Some(dir.join("cache")), quiet: true }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("swav-wgpu-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Extracts `members` (tar wildcards) of the JPEG archive into `dir`.
fn extract(dir: &Path, members: &[&str]) {
    let mut cmd = std::process::Command::new("tar");
    cmd.arg("-xzf").arg(shared().join("cifar10-jpg.tar.gz")).arg("-C").arg(dir).arg("--wildcards");
    cmd.args(members);
    let out = cmd.output().expect("tar runs");
    assert!(out.status.success(), "tar failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn cifar_binary_batches_parse_with_labels_and_classes() {
    let dir = shared().join("cifar-10-batches-bin");
    let split = data::open(Some(&dir), &data::OpenOptions::new(64)).unwrap();
    assert_eq!(split.train.len(), 10_000);
    let test = split.test.unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(split.train.classes[0], "airplane");
    let labels = test.labels.unwrap();
    for c in 0..10 {
        assert_eq!(labels.iter().filter(|&&l| l == c).count(), 1000, "test class {c}");
    }
    // A single .bin file is a dataset too.
    let one = data::open(Some(&dir.join("test_batch.bin")), &data::OpenOptions::new(64)).unwrap();
    assert_eq!(one.train.len(), 10_000);
    assert!(one.test.is_none());
}

#[test]
fn cifar_size_errors_name_the_file() {
    let e = cifar::parse(&[0u8; 3072], "x.bin").unwrap_err().to_string();
    assert!(e.contains("x.bin") && e.contains("3073"), "{e}");
    let e = cifar::parse(&[], "empty.bin").unwrap_err().to_string();
    assert!(e.contains("empty.bin"), "{e}");
}

#[test]
fn image_folder_decodes_real_jpegs_and_skips_corrupt_ones() {
    let dir = tmpdir("folder");
    extract(&dir, &["test/cat/000[0-4].jpg", "test/dog/000[0-4].jpg"]);
    let root = dir.join("test");
    // A truncated JPEG and a non-image with an image extension: warned about and skipped.
    let good = std::fs::read(root.join("cat/0000.jpg")).unwrap();
    std::fs::write(root.join("cat/truncated.jpg"), &good[..good.len() / 3]).unwrap();
    std::fs::write(root.join("dog/not-an-image.png"), b"hello").unwrap();
    let ds = data::open_folder(&root, &opts(&dir)).unwrap();
    assert_eq!(ds.classes, vec!["cat", "dog"]);
    assert_eq!(ds.len(), 10, "5 + 5 valid images");
    assert!((0..ds.len()).all(|i| ds.image(i).map(|i| (i.width, i.height)).unwrap() == (32, 32)));
    assert_eq!(ds.cache().unwrap().header().skipped_count, 2);
    assert_eq!(ds.labels.as_ref().unwrap().iter().filter(|&&l| l == 1).count(), 5);
    // A flat folder of images is unlabeled data.
    let flat = data::open_folder(&root.join("cat"), &opts(&dir)).unwrap();
    assert!(flat.labels.is_none() && flat.len() == 5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cifar_binary_and_jpeg_decode_agree_on_the_same_image() {
    // The binary batches hold the pixels of the archive's JPEGs: the first test record must
    // match one JPEG of its class up to the JPEG decoder's own rounding.
    let test = cifar::load_file(&shared().join("cifar-10-batches-bin/test_batch.bin")).unwrap();
    let (img, label) = (test.image(0).unwrap().into_owned(), test.labels.as_ref().unwrap()[0]);
    let class = &test.classes[label as usize];
    let dir = tmpdir("agree");
    extract(&dir, &[&format!("test/{class}/*.jpg")]);
    let files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("test").join(class)).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.len() >= 900, "{} files", files.len());
    let best = files
        .iter()
        .map(|f| {
            let j = folder::decode(f, 64).unwrap();
            let diff = j.rgb.iter().zip(&img.rgb).map(|(a, b)| (*a as i32 - *b as i32).unsigned_abs()).max().unwrap();
            (diff, f.clone())
        })
        .min()
        .unwrap();
    println!("best match {} with max |difference| {}", best.1.display(), best.0);
    assert!(best.0 <= 8, "no JPEG of class {class} matches the binary record (best max difference {})", best.0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn builtin_dataset_is_deterministic_and_balanced() {
    let a = synthetic::builtin();
    let b = synthetic::builtin();
    assert_eq!(a.train.image(17).unwrap(), b.train.image(17).unwrap());
    assert_eq!(a.train.len(), 4000);
    let test = a.test.unwrap();
    assert_eq!(test.len(), 1000);
    for c in 0..10 {
        assert_eq!(test.labels.as_ref().unwrap().iter().filter(|&&l| l == c).count(), 100);
    }
    // Images of one class differ (colour, position, size, noise).
    assert_ne!(a.train.image(0).unwrap(), a.train.image(1).unwrap());
}

#[test]
fn multicrop_is_deterministic_with_the_configured_sizes() {
    let ds = synthetic::builtin().train;
    let crops = vec![
        CropConfig { count: 2, size: 32, min_scale: 0.14, max_scale: 1.0 },
        CropConfig { count: 3, size: 16, min_scale: 0.05, max_scale: 0.14 },
    ];
    let cfg = AugmentConfig::new(&crops);
    let a = multicrop(&ds.image(3).unwrap(), &cfg, &mut Rng::derive(1, 2, 3));
    let b = multicrop(&ds.image(3).unwrap(), &cfg, &mut Rng::derive(1, 2, 3));
    let c = multicrop(&ds.image(3).unwrap(), &cfg, &mut Rng::derive(1, 2, 4));
    assert_eq!(a, b, "same stream, same crops");
    assert_ne!(a, c, "another stream, other crops");
    assert_eq!(
        a.iter().map(|x| x.len()).collect::<Vec<_>>(),
        vec![3 * 32 * 32, 3 * 32 * 32, 3 * 16 * 16, 3 * 16 * 16, 3 * 16 * 16]
    );
    assert!(a.iter().flatten().all(|v| v.is_finite() && v.abs() < 5.0), "normalised values");
}

/// A PNG whose header claims `w` x `h` RGB pixels, with one tiny (truncated) data chunk: the
/// front of a decompression bomb, whose real data would be a few KB of deflated zeros.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = vec![137, 80, 78, 71, 13, 10, 26, 10];
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00]));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn a_decompression_bomb_is_skipped_before_it_is_allocated() {
    let dir = tmpdir("bomb");
    extract(&dir, &["test/cat/000[0-2].jpg"]);
    let root = dir.join("test/cat");
    let bomb = root.join("bomb.png");
    std::fs::write(&bomb, png_claiming(12_000, 12_000)).unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 100);
    let e = folder::decode(&bomb, 64).expect_err("refused").to_string();
    assert!(e.contains("larger than the decoding limit") && e.contains("10000 px"), "{e}");
    // Within the limits the header alone does not refuse it: the data is what is missing.
    let small = root.join("small.png");
    std::fs::write(&small, png_claiming(64, 64)).unwrap();
    let e = folder::decode(&small, 64).expect_err("truncated").to_string();
    assert!(!e.contains("decoding limit"), "{e}");
    // In a folder, it is skipped and the rest loads.
    let ds = data::open_folder(&root, &opts(&dir)).unwrap();
    assert_eq!(ds.len(), 3, "the three real images");
    std::fs::remove_dir_all(&dir).ok();
}

/// A JPEG with an EXIF APP1 segment holding `orientation` (little- or big-endian TIFF).
fn with_exif_orientation(jpeg: &[u8], orientation: u16, big_endian: bool) -> Vec<u8> {
    let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut tiff = if big_endian { b"MM\0*".to_vec() } else { b"II*\0".to_vec() };
    tiff.extend(u32b(8));
    tiff.extend(u16b(2)); // two entries: another tag first, then the orientation
    for (tag, value) in [(0x010F, 0), (0x0112, orientation)] {
        tiff.extend(u16b(tag));
        tiff.extend(u16b(3));
        tiff.extend(u32b(1));
        tiff.extend(u16b(value));
        tiff.extend([0, 0]);
    }
    tiff.extend(u32b(0));
    let mut body = b"Exif\0\0".to_vec();
    body.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((body.len() + 2) as u16).to_be_bytes());
    out.extend(body);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn phone_photos_are_turned_upright_by_their_exif_orientation() {
    let img = swav_wgpu::testing::photo(60, 40, 1, 5);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&img).unwrap();
    let plain = folder::decode_bytes(&jpeg, "plain", 0).unwrap();
    let as_image = |i: &data::Image| image::RgbImage::from_raw(i.width as u32, i.height as u32, i.rgb.clone()).unwrap();
    for big_endian in [false, true] {
        // 6: stored rotated 90° counter-clockwise, shown after a clockwise turn.
        let turned = folder::decode_bytes(&with_exif_orientation(&jpeg, 6, big_endian), "turned", 0).unwrap();
        assert_eq!((turned.width, turned.height), (40, 60));
        assert_eq!(as_image(&turned), image::imageops::rotate90(&as_image(&plain)));
        let flipped = folder::decode_bytes(&with_exif_orientation(&jpeg, 2, big_endian), "flipped", 0).unwrap();
        assert_eq!(as_image(&flipped), image::imageops::flip_horizontal(&as_image(&plain)));
    }
    // 1 (upright) and nonsense values leave the pixels as stored.
    for o in [1, 0, 9, 300] {
        assert_eq!(folder::decode_bytes(&with_exif_orientation(&jpeg, o, false), "o", 0).unwrap(), plain, "{o}");
    }
}

#[test]
fn test_classes_are_matched_to_training_classes_by_name() {
    let d = tmpdir("by-name");
    let (train, test) = (d.join("train"), d.join("test"));
    data::photos::write_photo_folder(&train, 3, 2, &[(40, 30)], 1);
    // The test tree has the last two of the three classes (and a hidden folder, not a class).
    data::photos::write_photo_folder(&test, 3, 2, &[(40, 30)], 2);
    std::fs::remove_dir_all(test.join("class0")).unwrap();
    std::fs::create_dir_all(test.join(".ipynb_checkpoints")).unwrap();
    std::fs::copy(test.join("class1/00000.jpg"), test.join(".ipynb_checkpoints/00000.jpg")).unwrap();
    let names = ["class0", "class1", "class2"];
    // As train/ + test/ trees, and as --test-data (what train, eval and the k-NN open).
    let tree = data::open(Some(&d), &opts(&d)).unwrap();
    let flag = swav_wgpu::run::open_data(Some(&train), Some(&test), &opts(&d)).unwrap();
    for split in [tree, flag] {
        assert_eq!(split.train.classes, names);
        assert_eq!(split.train.labels.as_deref(), Some(&[0, 0, 1, 1, 2, 2][..]));
        let t = split.test.unwrap();
        assert_eq!(t.classes, names, "the test set speaks in the training classes");
        assert_eq!(t.labels.as_deref(), Some(&[1, 1, 2, 2][..]), "class1 and class2 keep their training labels");
    }
    // A test class the training data has not is an error naming it.
    data::photos::write_photo_folder(&d.join("extra"), 1, 1, &[(40, 30)], 3);
    std::fs::rename(d.join("extra/class0"), test.join("zebra")).unwrap();
    for e in [
        data::open(Some(&d), &opts(&d)).unwrap_err().to_string(),
        swav_wgpu::run::open_data(Some(&train), Some(&test), &opts(&d)).unwrap_err().to_string(),
    ] {
        assert!(e.contains("class 'zebra'") && e.contains("class0, class1, class2"), "{e}");
    }
    std::fs::remove_dir_all(&d).ok();
}
