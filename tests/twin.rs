//! The PyTorch twin (tests/torch/swav_torch.py) against the shared fixtures, and a backbone
//! exported by swav-wgpu loaded into the twin's torchvision-named ResNet: both must give the
//! same features. In CI (`CI=true` or `CI=1`) `python3` must import torch, safetensors and
//! numpy (.ci/run installs them): a missing one fails the tests, naming what to install.
//! Elsewhere the tests say clearly that they skipped.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn twin() -> PathBuf {
    repo().join("tests/torch/swav_torch.py")
}

/// What the twin needs, and how to get it.
const INSTALL: &str = "pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install safetensors numpy (or run .ci/run, which installs them)";

/// Whether `python3` can run the twin. In CI it must: a missing module fails the test.
fn torch_available(test: &str) -> bool {
    let out = Command::new("python3").args(["-c", "import torch, safetensors, numpy"]).output();
    let why = match &out {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("no message").to_string(),
        Err(e) => format!("python3 does not run: {e}"),
    };
    if swav_wgpu::testing::in_ci() {
        panic!("{test}: CI runs the PyTorch twin, but python3 cannot import torch, safetensors and numpy ({why}); install them: {INSTALL}");
    }
    eprintln!("SKIPPED {test}: python3 cannot import torch, safetensors and numpy ({why}); to run it: {INSTALL}");
    false
}

#[test]
fn only_ci_true_or_1_counts_as_ci() {
    use swav_wgpu::testing::ci_value_means_ci;
    for v in ["true", "TRUE", "True", "1", " true\n"] {
        assert!(ci_value_means_ci(Some(v)), "CI={v:?} is CI");
    }
    for v in [None, Some(""), Some("false"), Some("0"), Some("no"), Some("yes"), Some("2")] {
        assert!(!ci_value_means_ci(v), "CI={v:?} is not CI");
    }
}

fn python(args: &[&str]) -> String {
    let out = Command::new("python3").arg(twin()).args(args).output().expect("python3 runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "twin {args:?} failed:\n{text}");
    text
}

#[test]
fn twin_reproduces_the_fixture_steps() {
    if !torch_available("twin_reproduces_the_fixture_steps") {
        return;
    }
    let fixtures = repo().join("../shared/fixtures/swav_model");
    assert!(fixtures.is_dir(), "missing {} (the shared fixtures)", fixtures.display());
    // Three LARS steps in float64 against PyTorch's float64 reference: the losses, every
    // parameter, buffer and momentum after step 3 (the twin exits non-zero past 1e-9).
    let text = python(&["check-fixtures", fixtures.to_str().unwrap()]);
    assert!(text.contains("fixtures: OK"), "{text}");
}

/// A tiny CIFAR-format batch of random images with labels.
fn tiny_cifar(dir: &Path, n: usize) -> PathBuf {
    let mut bytes = Vec::with_capacity(n * 3073);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in 0..n {
        bytes.push((i % 10) as u8);
        for _ in 0..3072 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            bytes.push((s >> 56) as u8);
        }
    }
    let f = dir.join("data_batch_1.bin");
    std::fs::write(&f, bytes).unwrap();
    f
}

fn read_features(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("features").unwrap();
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn exported_backbone_gives_the_same_features_in_the_twin() {
    if !torch_available("exported_backbone_gives_the_same_features_in_the_twin") {
        return;
    }
    // Every stem: each places the convolutions and the pool differently.
    for stem in ["cifar", "cifar_pool", "imagenet"] {
        exported_backbone_matches_the_twin(stem);
    }
}

fn exported_backbone_matches_the_twin(stem: &str) {
    let dir = std::env::temp_dir().join(format!("swav-wgpu-twin-{}-{stem}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = tiny_cifar(&dir, 40);
    let run = dir.join("run");
    let bin = env!("CARGO_BIN_EXE_swav-wgpu");
    // A few real steps so the batch-norm statistics and weights are not the initial ones.
    let train = Command::new(bin)
        .args(["train", "--data", data.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "1"])
        .args(["--batch-size", "8", "--width", "0.125", "--stem", stem, "--prototypes", "16"])
        .args(["--feat-dim", "8", "--hidden-mlp", "16", "--crops", "2x32"])
        .output()
        .expect("swav-wgpu runs");
    assert!(train.status.success(), "train failed: {}", String::from_utf8_lossy(&train.stderr));
    let ours = dir.join("ours.safetensors");
    let embed = Command::new(bin)
        .args(["embed", "--checkpoint", run.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .args(["--out", ours.to_str().unwrap()])
        .output()
        .expect("swav-wgpu runs");
    assert!(embed.status.success(), "embed failed: {}", String::from_utf8_lossy(&embed.stderr));
    let theirs = dir.join("twin.safetensors");
    python(&[
        "embed",
        "--backbone",
        run.join("backbone.safetensors").to_str().unwrap(),
        "--config",
        run.join("config.toml").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        theirs.to_str().unwrap(),
        "--float64",
    ]);
    let (a, b) = (read_features(&ours), read_features(&theirs));
    assert_eq!(a.len(), b.len(), "feature counts differ");
    assert!(!a.is_empty());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    // Unit-norm rows: an absolute bound is a relative one.
    assert!(worst <= 1e-4, "{stem} stem: swav-wgpu embed vs the twin on the exported backbone: max |diff| {worst:e}");
    eprintln!(
        "exported backbone, {stem} stem: swav-wgpu vs twin features, max |diff| {worst:e} over {} values",
        a.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}
