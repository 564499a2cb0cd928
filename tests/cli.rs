//! The `swav-wgpu` binary on bad input: every case gets a clear message naming the file or
//! flag and a non-zero exit, never a panic. Plus: a diverging run stops at the step and names
//! where the NaN appeared, leaving the last checkpoint intact; Ctrl-C saves and exits.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swav-wgpu"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("swav-wgpu-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// Fails unless the command failed cleanly (exit code 1 or 2, no panic) with `needle` in
/// its error output.
fn assert_fails_with(args: &[&str], needle: &str) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded; stderr: {err}");
    assert!(matches!(out.status.code(), Some(1) | Some(2)), "{args:?} exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.contains(needle), "{args:?}: expected '{needle}' in: {err}");
}

fn gpu_available() -> bool {
    let ok = run(&["devices"]).status.success();
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("CI must have an adapter (install mesa-vulkan-drivers)");
        }
        eprintln!("SKIPPING: no adapter");
    }
    ok
}

#[test]
fn missing_data_path() {
    assert_fails_with(&["train", "--data", "/nonexistent/data", "--out", "/tmp/x"], "/nonexistent/data");
}

#[test]
fn empty_folder_and_folder_without_images() {
    let d = tmpdir("empty");
    let s = d.to_str().unwrap();
    assert_fails_with(&["train", "--data", s, "--out", &format!("{s}/run")], "contains no images");
    // Only undecodable "images".
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("a.jpg"), b"not a jpeg").unwrap();
    std::fs::write(bad.join("b.png"), b"").unwrap();
    assert_fails_with(&["train", "--data", bad.to_str().unwrap(), "--out", &format!("{s}/run")], "could be decoded");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn cifar_file_of_the_wrong_size_and_folder_without_batches() {
    let d = tmpdir("cifar");
    let f = d.join("data_batch_1.bin");
    std::fs::write(&f, vec![0u8; 3073 * 2 + 5]).unwrap();
    assert_fails_with(&["train", "--data", f.to_str().unwrap(), "--out", "/tmp/x"], "data_batch_1.bin");
    assert_fails_with(&["train", "--data", d.to_str().unwrap(), "--out", "/tmp/x"], "3073");
    let nobatch = d.join("nobatch");
    std::fs::create_dir_all(&nobatch).unwrap();
    std::fs::write(nobatch.join("test_batch.bin"), vec![0u8; 3073]).unwrap();
    assert_fails_with(&["train", "--data", nobatch.to_str().unwrap(), "--out", "/tmp/x"], "no data_batch_");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn impossible_flags() {
    assert_fails_with(&["train", "--batch-size", "0"], "batch size");
    assert_fails_with(&["train", "--epochs=-1"], "-1");
    assert_fails_with(&["train", "--epochs", "0"], "--epochs");
    assert_fails_with(&["train", "--arch", "resnet99"], "resnet99");
    assert_fails_with(&["train", "--stem", "round"], "round");
    assert_fails_with(&["train", "--crops", "2by32"], "--crops");
    assert_fails_with(&["train", "--optimizer", "adamw"], "adamw");
    assert_fails_with(&["eval", "knn"], "--checkpoint");
}

#[test]
fn batch_larger_than_the_dataset_or_the_device() {
    assert_fails_with(&["train", "--batch-size", "5000", "--out", "/tmp/x"], "larger than the dataset");
    if !gpu_available() {
        return;
    }
    // 3000 images of 64 channels at 32x32 are over WebGPU's 128 MiB binding limit.
    let d = tmpdir("big");
    assert_fails_with(
        &["train", "--batch-size", "3000", "--width", "1.0", "--out", d.to_str().unwrap()],
        "storage binding",
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn missing_corrupt_and_mismatched_checkpoints() {
    assert_fails_with(&["train", "--resume", "/nonexistent/ckpt.safetensors"], "no checkpoint found");
    assert_fails_with(&["eval", "knn", "--checkpoint", "/nonexistent/run"], "no checkpoint found");
    let d = tmpdir("ckpt");
    let f = d.join("checkpoint.safetensors");
    std::fs::write(&f, b"garbage").unwrap();
    assert_fails_with(&["train", "--resume", f.to_str().unwrap()], "checkpoint.safetensors");
    assert_fails_with(&["eval", "knn", "--checkpoint", f.to_str().unwrap()], "checkpoint.safetensors");
    std::fs::remove_dir_all(&d).ok();
}

/// A tiny labelled ImageFolder (2 classes x 8 images of 16x16) for fast runs.
fn tiny_folder(dir: &Path) {
    for (c, name) in ["a", "b"].iter().enumerate() {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..8u32 {
            let img = image::RgbImage::from_fn(16, 16, |x, y| {
                image::Rgb([((x * 16 + i) % 255) as u8, ((y * 16) as usize * (c + 1) % 255) as u8, (c * 200) as u8])
            });
            img.save(sub.join(format!("{i}.png"))).unwrap();
        }
    }
}

const TINY: [&str; 12] = [
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
];

/// A tiny training run in a fresh folder: returns (folder, run dir, train args) with the
/// TINY model on `tiny_folder` data, followed by `extra`.
fn tiny_run(name: &str, extra: &[&str]) -> (PathBuf, PathBuf, Vec<String>) {
    let d = tmpdir(name);
    let data_dir = d.join("data");
    tiny_folder(&data_dir);
    let out_dir = d.join("run");
    let mut args: Vec<String> = vec![
        "train".into(),
        "--data".into(),
        data_dir.display().to_string(),
        "--out".into(),
        out_dir.display().to_string(),
    ];
    args.extend(extra.iter().chain(TINY.iter()).map(|s| s.to_string()));
    (d, out_dir, args)
}

#[test]
fn nan_stops_the_run_names_the_step_and_keeps_the_checkpoint() {
    if !gpu_available() {
        return;
    }
    let (d, out_dir, args) = tiny_run("nan", &["--epochs", "2", "--checkpoint-every", "1", "--inject-nan-at", "2"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("iteration 2") && err.contains("'prototypes.weight'") && err.contains("intact"), "{err}");
    // The checkpoint of iteration 2 (after steps 0 and 1) is there and loads.
    let meta = swav_wgpu::io::read_metadata(&out_dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta["iteration"], "2");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_continues() {
    if !gpu_available() {
        return;
    }
    let (d, out_dir, args) = tiny_run("sigint", &["--epochs", "400", "--checkpoint-every", "100000"]);
    let child =
        bin().args(&args).stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).spawn().unwrap();
    let metrics = out_dir.join("metrics.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map(|s| s.lines().count()).unwrap_or(0) < 3 {
        assert!(start.elapsed().as_secs() < 300, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("checkpoint saved"), "{err}");
    let meta = swav_wgpu::io::read_metadata(&out_dir.join("checkpoint.safetensors")).unwrap();
    let saved: usize = meta["iteration"].parse().unwrap();
    assert!(saved >= 3);
    // Resuming with another architecture is refused; with the same one it continues.
    assert_fails_with(&["train", "--resume", out_dir.to_str().unwrap(), "--arch", "resnet34"], "another architecture");
    let out = run(&[
        "train",
        "--data",
        d.join("data").to_str().unwrap(),
        "--resume",
        out_dir.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--epochs",
        &(saved / 4 + 1).to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resumed from") && err.contains(&format!("iteration {saved}")), "{err}");
    std::fs::remove_dir_all(&d).ok();
}
