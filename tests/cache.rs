//! The dataset cache (src/data/cache.rs) on generated photo folders (procedural scenes, JPEG
//! and PNG, several sizes): built once and then opened, pixels equal to a direct decode,
//! a changed folder or a damaged cache noticed and rebuilt, a read-only data folder, one
//! builder at a time, data-parallel ranks reading only their slice, bounded memory while
//! training, and a resumed run that is bit-exact on cached data.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use swav_wgpu::data::cache::{self, CacheReader};
use swav_wgpu::data::loader::{Prefetcher, RankSlice};
use swav_wgpu::data::{self, folder, OpenOptions};
use swav_wgpu::testing::write_photo_folder;
use swav_wgpu::train::config::natural_image_defaults;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("swav-wgpu-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn opts(dir: &Path, side: usize) -> OpenOptions {
    OpenOptions { max_side: side, cache_dir: Some(dir.join("cache")), quiet: true }
}

/// The cache files in `dir`/cache (no locks, no temporaries).
fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("cache")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swav-wgpu"))
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn prepare(data: &Path, cache_dir: &Path, extra: &[&str]) -> (String, String) {
    let out = bin()
        .args(["prepare", "--data", data.to_str().unwrap(), "--cache-dir", cache_dir.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(out.status.success(), "prepare failed: {o}\n{e}");
    (o, e)
}

#[test]
fn a_folder_is_decoded_once_and_read_back_pixel_for_pixel() {
    let d = tmpdir("once");
    let files = write_photo_folder(&d.join("photos"), 3, 5, &[(200, 150), (90, 120), (64, 64), (40, 30)], 1);
    let ds = data::open_folder(&d.join("photos"), &opts(&d, 64)).unwrap();
    let c = ds.cache().expect("a photo folder is read through its cache");
    assert!(c.was_built());
    assert_eq!(c.header().encoding, cache::Encoding::Raw, "64 px keeps raw pixels");
    assert_eq!((ds.len(), ds.classes.len()), (15, 3));
    // Records are what decoding the file gives: the shorter side at most 64, never upsampled.
    for (i, f) in files.iter().enumerate() {
        let want = folder::decode(f, 64).unwrap();
        assert_eq!(*ds.image(i).unwrap(), want, "image {i} ({})", f.display());
        assert!(want.width.min(want.height) <= 64);
    }
    assert_eq!(ds.labels.as_ref().unwrap(), &[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    assert_eq!(c.reads(), 15);
    // The second open decodes nothing and gives the same dataset.
    let again = data::open_folder(&d.join("photos"), &opts(&d, 64)).unwrap();
    assert!(!again.cache().unwrap().was_built());
    for i in 0..ds.len() {
        assert_eq!(ds.image(i).unwrap(), again.image(i).unwrap());
    }
    // Another resolution is another cache; above 96 px records are JPEGs, close to the decode.
    let big = data::open_folder(&d.join("photos"), &opts(&d, 128)).unwrap();
    assert_eq!(big.cache().unwrap().header().encoding, cache::Encoding::Jpeg);
    let want = folder::decode(&files[0], 128).unwrap();
    let got = big.image(0).unwrap();
    assert_eq!((got.width, got.height), (171, 128));
    let mean_err: f64 =
        got.rgb.iter().zip(&want.rgb).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>() / want.rgb.len() as f64;
    assert!(mean_err < 3.0, "JPEG record differs from the decode by {mean_err} on average");
    assert_eq!(cache_files(&d).len(), 2);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_changed_folder_is_noticed_and_the_cache_rebuilt() {
    let d = tmpdir("changed");
    let photos = d.join("photos");
    write_photo_folder(&photos, 2, 4, &[(120, 90)], 2);
    let cache_dir = d.join("cache");
    let (out, _) = prepare(&photos, &cache_dir, &[]);
    assert!(out.contains("8 images") && out.contains(": built"), "{out}");
    let (out, err) = prepare(&photos, &cache_dir, &[]);
    assert!(out.contains("up to date, nothing to do") && !err.contains("decoding"), "{out}\n{err}");
    // A rewritten file (same name), then an added one: each is noticed.
    let victim = photos.join("class1/00001.jpg");
    let other = std::fs::read(photos.join("class0/00000.jpg")).unwrap();
    std::fs::write(&victim, &other).unwrap();
    let (out, err) = prepare(&photos, &cache_dir, &[]);
    assert!(err.contains("changed since its cache was built") && out.contains(": built"), "{out}\n{err}");
    std::fs::write(photos.join("class1/new.jpg"), &other).unwrap();
    let (out, err) = prepare(&photos, &cache_dir, &[]);
    assert!(err.contains("(8 files then, 9 now)") && out.contains("9 images"), "{out}\n{err}");
    // The rewritten image is read from the rebuilt cache.
    let ds = data::open_folder(&photos, &opts(&d, 0)).unwrap();
    let ds64 = data::open_folder(&photos, &opts(&d, 64)).unwrap();
    assert_eq!(ds.len(), 9);
    assert_eq!(ds64.image(5).unwrap().rgb, ds64.image(0).unwrap().rgb, "class1/00001.jpg is now class0/00000.jpg");
    assert_eq!(cache_files(&d).len(), 2, "one file per resolution, rebuilt in place: {:?}", cache_files(&d));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_truncated_or_damaged_cache_is_never_used_and_is_rebuilt() {
    let d = tmpdir("damaged");
    let photos = d.join("photos");
    write_photo_folder(&photos, 0, 12, &[(100, 80)], 3);
    let ds = data::open_folder(&photos, &opts(&d, 64)).unwrap();
    let want: Vec<_> = (0..ds.len()).map(|i| ds.image(i).unwrap().into_owned()).collect();
    let path = ds.cache().unwrap().path().to_path_buf();
    drop(ds);
    let bytes = std::fs::read(&path).unwrap();
    let rebuilt = |what: &str| {
        let ds = data::open_folder(&photos, &opts(&d, 64)).unwrap();
        assert!(ds.cache().unwrap().was_built(), "{what}: not rebuilt");
        for (i, w) in want.iter().enumerate() {
            assert_eq!(&*ds.image(i).unwrap(), w, "{what}: image {i}");
        }
    };
    // Truncated (an interrupted copy): the footer is gone.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = CacheReader::open(&path).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("damaged") && e.contains("truncated"), "{e}");
    rebuilt("truncated");
    // A flipped byte in the index: its checksum.
    let mut bad = bytes.clone();
    let footer = &bytes[bytes.len() - 48..];
    let index_at = u64::from_le_bytes(footer[..8].try_into().unwrap()) as usize;
    bad[index_at + 5] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();
    assert!(CacheReader::open(&path).is_err());
    rebuilt("index byte");
    // A flipped byte inside a record: found when that image is read; the cache is removed so
    // the next start rebuilds it.
    let mut bad = bytes.clone();
    bad[8 + 100] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();
    let ds = data::open_folder(&photos, &opts(&d, 64)).unwrap();
    assert!(!ds.cache().unwrap().was_built(), "the header and index are intact");
    let e = ds.image(0).unwrap_err().to_string();
    assert!(e.contains("record 0 fails its checksum") && e.contains("rebuilds it"), "{e}");
    assert!(!path.exists(), "a damaged cache is removed");
    drop(ds);
    rebuilt("record byte");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_read_only_data_folder_is_left_untouched_and_an_unwritable_cache_dir_is_a_clear_error() {
    let d = tmpdir("readonly");
    let photos = d.join("photos");
    write_photo_folder(&photos, 2, 3, &[(80, 60)], 4);
    let listing = |p: &Path| {
        let mut v: Vec<String> = Vec::new();
        for e in walk(p) {
            let m = std::fs::metadata(&e).unwrap();
            v.push(format!("{} {} {:?}", e.display(), m.len(), m.modified().unwrap()));
        }
        v
    };
    let before = listing(&photos);
    let chmod = |mode: &str| {
        assert!(Command::new("chmod").args(["-R", mode, photos.to_str().unwrap()]).status().unwrap().success())
    };
    chmod("a-w");
    let (out, _) = prepare(&photos, &d.join("cache"), &[]);
    chmod("u+w");
    assert!(out.contains(": built"), "{out}");
    assert_eq!(listing(&photos), before, "nothing is written into the data folder");
    assert_eq!(cache_files(&d).len(), 1);
    // A cache folder that cannot be made (a file is in the way): a clear error, exit 1.
    std::fs::write(d.join("not-a-folder"), b"x").unwrap();
    let out = bin()
        .args(["prepare", "--data", photos.to_str().unwrap(), "--cache-dir"])
        .arg(d.join("not-a-folder").join("sub"))
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the dataset cache") && err.contains("--cache-dir"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        let mut kids: Vec<PathBuf> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
        kids.sort();
        for k in kids {
            out.extend(walk(&k));
        }
    }
    out
}

#[test]
fn one_process_builds_while_another_waits_and_a_dead_builder_is_taken_over() {
    let d = tmpdir("lock");
    let photos = d.join("photos");
    write_photo_folder(&photos, 0, 40, &[(640, 480)], 5);
    let cache_dir = d.join("cache");
    let start = || {
        bin()
            .args(["prepare", "--data", photos.to_str().unwrap(), "--cache-dir", cache_dir.to_str().unwrap()])
            .args(["--max-side", "256"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ta, tb) = (text(&a), text(&b));
    assert!(a.status.success() && b.status.success(), "{ta:?}\n{tb:?}");
    let all = format!("{}{}{}{}", ta.0, ta.1, tb.0, tb.1);
    assert_eq!(all.matches("dataset cache: decoding").count(), 1, "built exactly once:\n{all}");
    assert_eq!(all.matches(": built").count(), 1, "{all}");
    assert_eq!(cache_files(&d).len(), 1, "no lock or temporary file left: {:?}", cache_files(&d));
    // A build killed with -9 leaves its lock and temporary file: the next start removes both.
    let cache = cache_files(&d).remove(0);
    std::fs::remove_file(&cache).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let dead = 4_000_000; // above Linux's pid_max
    std::fs::write(cache.with_extension("swavdata.lock"), format!("{host} pid {dead}")).unwrap();
    let tmp = PathBuf::from(format!("{}.tmp-{host}-{dead}", cache.display()));
    std::fs::write(&tmp, b"half a cache").unwrap();
    let (out, err) = prepare(&photos, &cache_dir, &["--max-side", "256"]);
    assert!(err.contains("taking over") && out.contains(": built"), "{out}\n{err}");
    assert!(!tmp.exists(), "the dead build's temporary file is removed");
    assert_eq!(cache_files(&d), vec![cache]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn each_rank_reads_only_its_slice_and_the_slices_make_the_global_batch() {
    let d = tmpdir("slices");
    let photos = d.join("photos");
    write_photo_folder(&photos, 2, 12, &[(70, 50), (50, 70)], 6);
    let mut cfg = natural_image_defaults();
    cfg.crops = swav_wgpu::train::CropConfig::parse_groups("2x16,1x8").unwrap();
    let (batch, world, iters) = (4, 2, 5); // 3 iterations per epoch: crosses an epoch
    let global = {
        let ds = std::sync::Arc::new(data::open_folder(&photos, &opts(&d, 64)).unwrap());
        let p = Prefetcher::new(ds.clone(), cfg.augment(), batch * world, 7, 0, iters, RankSlice::ALL);
        let b: Vec<_> = (0..iters).map(|_| p.next().unwrap().unwrap().crops).collect();
        b
    };
    let mut per_rank = Vec::new();
    for rank in 0..world {
        let ds = std::sync::Arc::new(data::open_folder(&photos, &opts(&d, 64)).unwrap());
        let p = Prefetcher::new(ds.clone(), cfg.augment(), batch, 7, 0, iters, RankSlice { rank, world });
        let b: Vec<_> = (0..iters).map(|_| p.next().unwrap().unwrap().crops).collect();
        drop(p);
        assert_eq!(ds.cache().unwrap().reads(), (iters * batch) as u64, "rank {rank} read only its slice");
        per_rank.push(b);
    }
    for it in 0..iters {
        for c in 0..3 {
            let joined: Vec<f32> = (0..world).flat_map(|r| per_rank[r][it][c].iter().copied()).collect();
            assert_eq!(joined, global[it][c], "iteration {it}, crop {c}");
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

/// Peak RssAnon (KiB) of a process, sampled every few milliseconds until it exits.
fn peak_rss_anon(mut child: std::process::Child) -> (u64, Output) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    (peak, child.wait_with_output().unwrap())
}

const TINY: [&str; 14] = [
    "--batch-size",
    "4",
    "--crops",
    "2x16,2x8",
    "--prototypes",
    "8",
    "--feat-dim",
    "8",
    "--hidden-mlp",
    "16",
    "--width",
    "0.0625",
    "--max-side",
    "512",
];

#[test]
fn a_runs_memory_does_not_grow_with_the_dataset() {
    // 20 and 160 photos of 800x600 kept at 512 px: held decoded, the larger set alone would
    // take 160 x 512 x 683 x 3 B = 168 MB, 147 MB more than the smaller one.
    let (mut peaks, mut logs) = (Vec::new(), Vec::new());
    for n in [20, 160] {
        let d = tmpdir(&format!("rss{n}"));
        write_photo_folder(&d.join("photos"), 4, n / 4, &[(800, 600), (600, 800)], 8);
        let child = bin()
            .args(["train", "--data", d.join("photos").to_str().unwrap(), "--out", d.join("run").to_str().unwrap()])
            .args(["--cache-dir", d.join("cache").to_str().unwrap(), "--stop-at", "3"])
            .args(TINY)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (peak, out) = peak_rss_anon(child);
        let (o, e) = text(&out);
        assert!(out.status.success(), "{o}\n{e}");
        logs.push(e);
        println!("{n} photos: peak RssAnon {:.1} MiB", peak as f64 / 1024.0);
        peaks.push(peak);
        std::fs::remove_dir_all(&d).ok();
    }
    let grew = peaks[1] as f64 / 1024.0 - peaks[0] as f64 / 1024.0;
    assert!(grew.abs() < 64.0, "peak RssAnon grew by {grew:.1} MiB from 20 to 160 photos: {peaks:?} KiB");
    for e in logs {
        assert!(e.contains("images: 512 px (shorter side), dataset cache"), "the first lines name the cache: {e}");
    }
}

fn checkpoint_bits(run: &Path) -> std::collections::BTreeMap<String, Vec<u32>> {
    swav_wgpu::io::load_safetensors(&run.join("checkpoint.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.data.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn a_run_resumed_on_cached_data_is_bit_exact() {
    let d = tmpdir("resume");
    let photos = d.join("photos");
    write_photo_folder(&photos, 2, 8, &[(300, 200), (200, 300)], 9);
    let train = |out: &str, extra: &[&str]| {
        let o = bin()
            .args(["train", "--data", photos.to_str().unwrap(), "--out", d.join(out).to_str().unwrap()])
            .args(["--cache-dir", d.join("cache").to_str().unwrap(), "--epochs", "2"])
            .args(TINY)
            .args(extra)
            .output()
            .unwrap();
        let (so, se) = text(&o);
        assert!(o.status.success(), "{so}\n{se}");
        se
    };
    let first = train("straight", &[]);
    assert!(first.contains("dataset cache: decoding 16 images"), "{first}");
    let stopped = train("resumed", &["--stop-at", "5"]);
    assert!(!stopped.contains("dataset cache: decoding"), "the second run opens the cache: {stopped}");
    let o = bin().args(["train", "--resume", d.join("resumed").to_str().unwrap()]).output().unwrap();
    let (so, se) = text(&o);
    assert!(o.status.success() && !se.contains("decoding"), "{so}\n{se}");
    let config = std::fs::read_to_string(d.join("resumed/config.toml")).unwrap();
    assert!(config.contains("max_side = 512") && config.contains("cache_dir = "), "{config}");
    assert_eq!(checkpoint_bits(&d.join("straight")), checkpoint_bits(&d.join("resumed")));
    // embed opens the run's cache at the run's resolution: nothing is decoded again.
    let feats = d.join("f.safetensors");
    let o = bin()
        .args(["embed", "--checkpoint", d.join("resumed").to_str().unwrap(), "--out", feats.to_str().unwrap()])
        .output()
        .unwrap();
    let (so, se) = text(&o);
    assert!(o.status.success() && !se.contains("decoding") && so.contains("wrote 16 features"), "{so}\n{se}");
    // A resume at another resolution is refused, naming the run's.
    let o =
        bin().args(["train", "--resume", d.join("resumed").to_str().unwrap(), "--max-side", "64"]).output().unwrap();
    let (_, se) = text(&o);
    assert!(!o.status.success() && se.contains("max_side = 512") && se.contains("--max-side gives 64"), "{se}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn eval_caches_a_train_and_a_test_tree_once() {
    let d = tmpdir("eval");
    write_photo_folder(&d.join("photos/train"), 2, 6, &[(90, 70)], 12);
    write_photo_folder(&d.join("photos/test"), 2, 3, &[(70, 90)], 13);
    let eval = || {
        let o = bin()
            .args(["eval", "knn", "--random-init", "--width", "0.0625", "--data"])
            .arg(d.join("photos"))
            .arg("--cache-dir")
            .arg(d.join("cache"))
            .output()
            .unwrap();
        let (so, se) = text(&o);
        assert!(o.status.success() && so.contains("k-NN top-1 (random init)"), "{so}\n{se}");
        se
    };
    let first = eval();
    assert_eq!(first.matches("dataset cache: decoding").count(), 2, "train and test: {first}");
    let second = eval();
    assert!(!second.contains("decoding"), "{second}");
    assert_eq!(cache_files(&d).len(), 2);
    std::fs::remove_dir_all(&d).ok();
}
