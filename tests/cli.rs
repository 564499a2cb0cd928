//! The `swav-wgpu` binary on bad input: every case gets a clear message naming the file or
//! flag and a non-zero exit, never a panic. Plus: a diverging run stops at the step and names
//! where the NaN appeared, leaving the last checkpoint intact; Ctrl-C saves and exits. A run
//! remembers its data and folder on --resume, leaves a finished run alone, and logs a learning
//! monitor per epoch.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, with its dataset caches in this test process's own folder (not the user's).
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swav-wgpu"));
    c.env("XDG_CACHE_HOME", std::env::temp_dir().join(format!("swav-wgpu-cli-cache-{}", std::process::id())));
    c
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
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{args:?} panicked: {err}");
    assert!(err.contains(needle), "{args:?}: expected '{needle}' in: {err}");
}

fn gpu_available() -> bool {
    let ok = run(&["devices"]).status.success();
    if !ok {
        if swav_wgpu::testing::in_ci() {
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
fn sizes_no_step_can_hold_are_errors_naming_the_flag() {
    // Each of these once overflowed, aborted on an allocation (--epochs 1e10: 4.96 TB for
    // the learning-rate table, exit 134) or reached the plan as 2^64-1 channels (--width).
    let d = tmpdir("huge");
    let out = d.join("run").display().to_string();
    let huge = "10000000000000";
    let cases: &[(&[&str], &str)] = &[
        (&["train", "--epochs", "10000000000"], "epochs (--epochs)"),
        (&["train", "--width", "1e20"], "width (--width)"),
        (&["train", "--batch-size", "100000000", "--crops", "2x10000"], "--batch-size"),
        (&["train", "--batch-size", "18446744073709551615"], "--batch-size"),
        (&["train", "--crops", "1000000x32"], "--crops"),
        (&["train", "--crops", "18446744073709551615x32,2x16"], "--crops"),
        (&["train", "--prototypes", huge], "--prototypes"),
        (&["train", "--feat-dim", huge], "--feat-dim"),
        (&["train", "--hidden-mlp", huge], "--hidden-mlp"),
        (&["train", "--queue-length", huge], "--queue-length"),
        (&["eval", "linear", "--random-init", "--epochs", "10000000000"], "--epochs"),
        (&["eval", "knn", "--random-init", "--max-side", "99999999999"], "--max-side"),
        (&["bench", "--reps", "10000000000"], "--reps"),
        (&["bench", "--reps", "0"], "--reps"),
        (&["check-parallel", "--steps", "10000000000"], "--steps"),
    ];
    for (args, flag) in cases {
        let mut args = args.to_vec();
        if args[0] == "train" {
            args.extend(["--out", &out]);
        }
        assert_fails_with(&args, flag);
    }
    // The same numbers in a config file are refused by name.
    let toml = d.join("huge.toml");
    for key in
        ["epochs = 10000000000", "width = 1e20", "prototypes = 10000000000000", "sinkhorn_iterations = 10000000000"]
    {
        std::fs::write(&toml, key).unwrap();
        let name = key.split(' ').next().unwrap();
        assert_fails_with(&["train", "--config", toml.to_str().unwrap(), "--out", &out], name);
        assert_fails_with(&["bench", "--config", toml.to_str().unwrap()], name);
    }
    std::fs::remove_dir_all(&d).ok();
    // And on a resume, which takes --epochs over the run's config.
    let (d, out_dir) = tiny_run_stopped_at("huge-resume", 1);
    assert_fails_with(
        &["train", "--resume", out_dir.to_str().unwrap(), "--epochs", "10000000000"],
        "epochs (--epochs)",
    );
    std::fs::remove_dir_all(&d).ok();
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
    image_folder(dir, 8);
}

/// A labelled ImageFolder of 2 classes ("a" is 0, "b" is 1) x `per_class` 16x16 images.
fn image_folder(dir: &Path, per_class: u32) {
    for (c, name) in ["a", "b"].iter().enumerate() {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..per_class {
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

/// The binary run in folder `dir`.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin().current_dir(dir).args(args).output().expect("the binary runs")
}

fn metrics_lines(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The per-iteration lines' iterations, and the per-epoch lines.
fn iterations_and_epochs(run_dir: &Path) -> (Vec<u64>, Vec<serde_json::Value>) {
    let lines = metrics_lines(run_dir);
    let iterations = lines.iter().filter(|v| v["loss"].is_number()).map(|v| v["iteration"].as_u64().unwrap()).collect();
    let epochs = lines.into_iter().filter(|v| v.get("code_entropy").is_some()).collect();
    (iterations, epochs)
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p).unwrap().display().to_string()
}

#[test]
fn a_resumed_run_trains_on_its_own_data_in_its_own_folder() {
    if !gpu_available() {
        return;
    }
    let d = tmpdir("remember");
    tiny_folder(&d.join("data"));
    tiny_folder(&d.join("other"));
    // Relative paths: the run records them absolute, so a resume from elsewhere finds them.
    let mut args = vec!["train", "--data", "data", "--out", "run", "--epochs", "1"];
    args.extend(TINY);
    let out = run_in(&d, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.starts_with("recipe: natural-image defaults"), "{err}");
    let run_dir = d.join("run");
    let text = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    let recorded = swav_wgpu::train::TrainConfig::from_toml(&text).unwrap();
    assert_eq!(recorded.data.as_deref(), Some(canonical(&d.join("data")).as_str()), "{text}");
    let overlaid = swav_wgpu::train::config::small_data_defaults().with_toml(&text).unwrap();
    assert_eq!(overlaid, recorded);

    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let refused = |args: &[&str], needles: &[&str]| {
        let out = run_in(&elsewhere, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: expected '{n}' in: {err}");
        }
    };
    refused(
        &["train", "--resume", "../run", "--data", "../other"],
        &[&canonical(&d.join("data")), &canonical(&d.join("other"))],
    );
    refused(&["train", "--resume", "../run", "--out", "../run2"], &["--out '../run2'", "another folder"]);
    assert!(!d.join("run2").exists());

    // No --data, no --out: the run's data, and its folder (not runs/swav here).
    std::fs::remove_file(run_dir.join("backbone.safetensors")).unwrap();
    let out = run_in(&elsewhere, &["train", "--resume", "../run", "--epochs", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.starts_with("recipe: resumed from"), "{err}");
    assert!(err.contains("at iteration 4") && err.contains(&canonical(&d.join("data"))), "{err}");
    assert!(!elsewhere.join("runs").exists(), "a resume wrote into the default run folder");
    let meta = swav_wgpu::io::read_metadata(&run_dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta["iteration"], "8");
    assert!(run_dir.join("backbone.safetensors").is_file());
    // 16 images / batch 4: the same 4 iterations per epoch before and after the resume.
    let (iterations, epochs) = iterations_and_epochs(&run_dir);
    assert_eq!(iterations, (0..8).collect::<Vec<u64>>());
    let ends: Vec<u64> = epochs.iter().map(|v| v["iteration"].as_u64().unwrap()).collect();
    assert_eq!(ends, [4, 8]);
    // The exported backbone alone is enough for eval and embed (its metadata holds the
    // config), as the browser demo's download is.
    let backbone = run_dir.join("backbone.safetensors");
    let data = d.join("data");
    let out = run(&["eval", "knn", "--checkpoint", backbone.to_str().unwrap(), "--test-data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("k-NN top-1"));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn resuming_a_finished_run_says_so_and_changes_nothing() {
    if !gpu_available() {
        return;
    }
    let (d, run_dir, args) = tiny_run("finished", &["--epochs", "1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snapshot = || -> Vec<(PathBuf, std::time::SystemTime, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(&run_dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.clone(), std::fs::metadata(&p).unwrap().modified().unwrap(), std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot();
    let out = run(&["train", "--resume", run_dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is finished: 4 of 4 iterations") && err.contains("--epochs M (> 1)"), "{err}");
    assert!(!err.contains("adapter:"), "a finished run needs no device: {err}");
    assert!(before == snapshot(), "resuming a finished run changed its files");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn the_learning_monitor_logs_every_epoch() {
    if !gpu_available() {
        return;
    }
    let test_dir = tmpdir("monitor-test");
    tiny_folder(&test_dir);
    let (d, run_dir, args) =
        tiny_run("monitor", &["--epochs", "2", "--eval-every", "1", "--test-data", test_dir.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let (_, epochs) = iterations_and_epochs(&run_dir);
    assert_eq!(epochs.len(), 2, "{epochs:?}");
    let ln_k = 8f64.ln();
    for (e, v) in epochs.iter().enumerate() {
        assert_eq!(v["epoch"].as_u64(), Some(e as u64 + 1), "{v}");
        let entropy = v["code_entropy"].as_f64().unwrap();
        assert!(entropy.is_finite() && (0.0..=ln_k + 1e-6).contains(&entropy), "{v}");
        let in_use = v["prototypes_in_use"].as_u64().unwrap();
        assert!((1..=8).contains(&in_use), "{v}");
        assert!(v["loss_mean"].as_f64().unwrap().is_finite() && v["img_per_s"].as_f64().unwrap() > 0.0, "{v}");
    }
    // --eval-every 1: the k-NN in epoch 1's line (the last epoch's is the final evaluation).
    assert!(epochs[0]["knn_top1"].is_number() && epochs[0]["knn_top1_k200"].is_number(), "{}", epochs[0]);
    assert!(metrics_lines(&run_dir).iter().any(|v| v["knn_top1"].is_number() && v["iteration"] == 8));
    // Stderr is a pipe here, not a terminal: one plain line per epoch.
    for e in 1..=2 {
        assert!(err.contains(&format!("epoch {e}/2  loss ")), "{err}");
    }
    assert!(err.contains("prototypes ") && err.contains("/8  ") && err.contains("k-NN "), "{err}");
    let svg = std::fs::read_to_string(run_dir.join("loss.svg")).unwrap();
    assert!(svg.contains("code entropy") && svg.contains("prototypes in use") && svg.ends_with("</svg>\n"));
    std::fs::remove_dir_all(&d).ok();
    std::fs::remove_dir_all(&test_dir).ok();
}

/// `eval knn --random-init --seed S` is the baseline of `train --seed S`: the untrained
/// network it evaluates must be the one training starts from, weight for weight.
#[test]
fn random_init_baseline_is_the_network_training_starts_from() {
    use swav_wgpu::eval::FeatureExtractor;
    use swav_wgpu::train::{CropConfig, TrainConfig, Trainer};
    if !gpu_available() {
        return;
    }
    let gpu = swav_wgpu::gpu::Gpu::from_env_blocking().unwrap();
    let cfg = TrainConfig {
        batch_size: 4,
        width: 0.0625,
        crops: vec![CropConfig { count: 2, size: 16, min_scale: 0.14, max_scale: 1.0 }],
        ..swav_wgpu::train::config::natural_image_defaults()
    };
    let d = tmpdir("baseline");
    tiny_folder(&d);
    let opts = swav_wgpu::data::OpenOptions { max_side: 64, cache_dir: Some(d.join("cache")), quiet: true };
    let data = swav_wgpu::data::open(Some(&d), &opts).unwrap().train;
    let seed = 3;
    let trainer = Trainer::new(gpu.clone(), cfg.clone(), 1).unwrap();
    trainer.init_random(seed).unwrap();
    let trained = FeatureExtractor::new(gpu.clone(), &cfg.backbone().unwrap(), 8, 16).unwrap();
    let state = trainer.state_blocking().unwrap();
    trained
        .load(&state.into_iter().filter(|(k, _)| swav_wgpu::train::checkpoint::is_backbone_key(k)).collect())
        .unwrap();
    let baseline = FeatureExtractor::new(gpu, &cfg.backbone().unwrap(), 8, 16).unwrap();
    baseline.init_random(seed).unwrap();
    let (a, b) = (trained.extract(&data).unwrap(), baseline.extract(&data).unwrap());
    assert!(a == b, "the --random-init network differs from the one training starts from");
    std::fs::remove_dir_all(&d).ok();
}

/// `swav-wgpu bench --quick` on one small config file: the adapter, matmul and conv
/// throughput and the step line come out, for people and as JSON lines; a bad file is a clear
/// error.
#[test]
fn bench_reports_kernels_and_steps() {
    if !gpu_available() {
        return;
    }
    let dir = tmpdir("bench");
    let cfg = dir.join("tiny.toml");
    std::fs::write(
        &cfg,
        "width = 0.0625\nbatch_size = 8\nhidden_mlp = 16\nfeat_dim = 8\nprototypes = 16\n[[crops]]\ncount = 2\nsize = 16\nmin_scale = 0.3\nmax_scale = 1.0\n",
    )
    .unwrap();
    let out = run(&["bench", "--quick", "--reps", "1", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {}{text}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<serde_json::Value> =
        text.lines().filter_map(|l| l.strip_prefix("json: ")).map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = records.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "adapter").count(), 1, "{text}");
    assert!(kinds.iter().filter(|k| **k == "kernel").count() >= 5, "{text}");
    let step = records.iter().find(|r| r["kind"] == "step").expect("a step record");
    assert_eq!(step["config"], "tiny");
    assert!(step["img_per_s"].as_f64().unwrap() > 0.0 && step["loader_samples_per_s"].as_f64().unwrap() > 0.0);
    std::fs::write(&cfg, "width = \"wide\"\n").unwrap();
    assert_fails_with(&["bench", "--quick", "--config", cfg.to_str().unwrap()], "tiny.toml");
}

/// Every tensor of a checkpoint, as bits.
fn checkpoint_bits(run_dir: &Path) -> std::collections::BTreeMap<String, Vec<u32>> {
    swav_wgpu::io::load_safetensors(&run_dir.join("checkpoint.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.data.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_nothing_but_the_work_since_the_last_checkpoint() {
    if !gpu_available() {
        return;
    }
    // The uninterrupted run.
    let extra = ["--epochs", "30", "--checkpoint-every", "1"];
    let (d, straight, args) = tiny_run("crash-straight", &extra);
    let start = std::time::Instant::now();
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Kills land anywhere in a process's life: start-up, steps, checkpoint writes.
    let span = start.elapsed().as_secs_f64() / 3.0;
    let want = checkpoint_bits(&straight);
    // The same run killed (SIGKILL) at 12 moments, each time continued with --resume (or
    // started again when no checkpoint was written yet).
    let crashed = d.join("crashed");
    let fresh: Vec<String> = args
        .iter()
        .map(|a| if *a == straight.display().to_string() { crashed.display().to_string() } else { a.clone() })
        .collect();
    let resume = ["train".to_string(), "--resume".into(), crashed.display().to_string()];
    let mut rng = swav_wgpu::rng::Rng::new(16);
    let same_as_straight = |what: &str, kills: usize| {
        let got = checkpoint_bits(&crashed);
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (name, bits) in &want {
            assert!(&got[name] == bits, "'{name}' differs from the uninterrupted run {what} after {kills} kills");
        }
    };
    let (mut kills, mut mid_run, mut attempts, mut finished) = (0, 0, 0, 0);
    let mut span = span;
    // At least 12 kills, 8 of them once the run has a checkpoint (so --resume is exercised).
    // Each resumed start gets further, so on a machine where start-up is cheap the run can
    // reach its end before that: then its result must already equal the uninterrupted run's,
    // and the chain starts over from nothing with shorter waits.
    while kills < 12 || mid_run < 8 {
        attempts += 1;
        assert!(attempts < 100, "only {kills} kills in {attempts} starts");
        let started = crashed.join("checkpoint.safetensors").exists();
        let argv = if started { resume.to_vec() } else { fresh.clone() };
        let mut child =
            bin().args(&argv).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_secs_f64(0.2 + rng.uniform() * span));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "a start after {kills} kills failed: {status}");
            same_as_straight("on reaching its end", kills);
            finished += 1;
            std::fs::remove_dir_all(&crashed).unwrap();
            span *= 0.6;
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        mid_run += started as usize;
        if crashed.join("checkpoint.safetensors").exists() {
            // Whatever moment the kill hit, the checkpoint on disk is whole.
            checkpoint_bits(&crashed);
        }
    }
    // A kill can land after the last checkpoint and before the exit: then start over, so the
    // crash below falls inside a checkpoint write that matters.
    let last =
        |dir: &Path| swav_wgpu::io::read_metadata(&dir.join("checkpoint.safetensors")).unwrap()["iteration"].clone();
    if crashed.join("checkpoint.safetensors").exists() && last(&crashed) == last(&straight) {
        std::fs::remove_dir_all(&crashed).unwrap();
    }
    let argv = if crashed.join("checkpoint.safetensors").exists() { resume.to_vec() } else { fresh.clone() };
    // Once more inside a checkpoint write (between the write and the rename).
    let out = bin().args(&argv).env("SWAV_WGPU_TEST_CRASH_BEFORE_RENAME", "checkpoint.safetensors").output().unwrap();
    assert!(!out.status.success(), "the hook did not fire");
    checkpoint_bits(&crashed);
    // Then to the end.
    let out = bin().args(&resume).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "{kills} kills ({mid_run} of a resumed run) in {attempts} starts ({finished} chains reached their end), \
         then a crash inside a checkpoint write"
    );
    same_as_straight("at the end", kills);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_full_disk_during_a_checkpoint_is_a_clear_error_and_keeps_the_previous_one() {
    if !gpu_available() {
        return;
    }
    let (d, out_dir, args) = tiny_run("disk", &["--epochs", "1", "--checkpoint-every", "1"]);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = checkpoint_bits(&out_dir);
    let size = std::fs::metadata(out_dir.join("checkpoint.safetensors")).unwrap().len();
    // Files may not grow past half a checkpoint (ulimit -f, in 512-byte blocks; SIGXFSZ
    // ignored so the write fails with EFBIG, as on a full disk).
    let blocks = size / 2 / 512;
    let script = format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" train --resume \"$1\" --epochs 2",);
    let out = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_swav-wgpu"), out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write") && err.contains("checkpoint.safetensors"), "{err}");
    assert!(checkpoint_bits(&out_dir) == before, "the previous checkpoint changed");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_run_folder_that_refuses_files_is_a_clear_error_and_keeps_the_previous_checkpoint() {
    // Tests run as root in CI, where permission bits stop nothing; so the folder refuses the
    // temporary file another way: a directory already sits at its path (EISDIR on create).
    let d = tmpdir("unwritable");
    let target = d.join("checkpoint.safetensors");
    std::fs::write(&target, b"the previous checkpoint").unwrap();
    let blocker = d.join(format!(".checkpoint.safetensors.tmp-{}", std::process::id()));
    std::fs::create_dir(&blocker).unwrap();
    let err = swav_wgpu::io::write_file_atomic(&target, b"the new one").unwrap_err().to_string();
    assert!(err.contains("cannot create a temporary file") && err.contains("checkpoint.safetensors"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"the previous checkpoint");
    // A run folder whose path is not a folder at all (ENOTDIR).
    let err = swav_wgpu::io::write_file_atomic(&target.join("x.safetensors"), b"y").unwrap_err().to_string();
    assert!(err.contains("cannot create a temporary file"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

/// A tiny run with a GPU fault injected (`flag`) before iteration 3: it exits 1 without a
/// panic, the iteration-3 checkpoint is whole, and the error text comes back.
fn run_with_gpu_fault(name: &str, flag: &str) -> (PathBuf, PathBuf, String) {
    let (d, out_dir, args) = tiny_run(name, &["--epochs", "2", "--checkpoint-every", "1", flag, "3"]);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--resume") && !err.contains("panicked"), "{err}");
    let meta = swav_wgpu::io::read_metadata(&out_dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta["iteration"], "3");
    checkpoint_bits(&out_dir);
    (d, out_dir, err)
}

#[test]
fn a_command_the_gpu_rejects_is_a_named_error_and_the_run_resumes() {
    if !gpu_available() {
        return;
    }
    // An error no error scope caught (wgpu's default handler would panic): the step's results
    // are discarded, the run exits 1 naming it, and --resume continues from the checkpoint.
    let (d, out_dir, err) = run_with_gpu_fault("rejected", "--inject-gpu-error-at");
    assert!(err.contains("the GPU rejected a command") && err.contains("MAP_READ"), "{err}");
    let out = run(&["train", "--resume", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_lost_device_is_a_named_error_and_the_checkpoint_stays() {
    if !gpu_available() {
        return;
    }
    let (d, _, err) = run_with_gpu_fault("lost", "--inject-device-loss-at");
    assert!(err.contains("the GPU device was lost"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn ten_thousand_mutated_command_lines_never_panic() {
    // Valid command lines, then 10,000 token-level mutations of them, parsed and checked as a
    // run would be up to opening the GPU (SWAV_WGPU_CHECK_ARGS): exit 0, 1 or 2, never a panic.
    let d = tmpdir("fuzz-cli");
    let toml = d.join("c.toml");
    std::fs::write(&toml, "epochs = 2\nlr = 0.1\n").unwrap();
    let toml = toml.display().to_string();
    let seeds: Vec<Vec<&str>> = vec![
        vec!["train", "--epochs", "2", "--batch-size", "8", "--crops", "2x32,4x16", "--lr", "0.1"],
        vec!["train", "--config", &toml, "--arch", "resnet18", "--width", "0.25", "--stem", "cifar"],
        vec!["train", "--prototypes", "64", "--feat-dim", "16", "--queue-length", "128", "--optimizer", "sgd"],
        vec!["train", "--resume", "/nonexistent", "--stop-at", "5", "--sync-bn"],
        vec!["eval", "knn", "--random-init", "--seed", "3"],
        vec!["embed", "--random-init", "--out", "/tmp/x.safetensors"],
        vec!["bench", "--quick", "--reps", "1"],
        vec!["check-parallel", "--batch-size", "4", "--steps", "3"],
        vec!["plan", "--arch", "resnet50", "--crops", "2x224,6x96", "--batch-size", "64"],
        vec!["prepare", "--data", "/nonexistent", "--max-side", "256"],
        vec!["eval", "linear", "--checkpoint", "/nonexistent", "--epochs", "5"],
        vec!["devices", "--backend", "vulkan"],
    ];
    let junk: &[&str] = &[
        "",
        "-",
        "--",
        "nan",
        "NaN",
        "inf",
        "-1",
        "0",
        "1e400",
        "99999999999999999999",
        "0x10",
        "2x",
        "x32",
        "0x0",
        "é",
        "../../etc",
        "--epochs",
        "--lr",
        "--crops",
        "--batch-size",
        "--width",
        "--resume",
        "--data",
        "--tune",
        "full",
        "--backend",
        "metal",
        "--max-side",
        "--epsilon",
        "--temperature",
        "2x32,0x16",
    ];
    // Arguments that are no UTF-8 (a file name in Latin-1, bytes from a broken script).
    use std::os::unix::ffi::OsStringExt;
    let bytes_junk: Vec<std::ffi::OsString> = [&b"\xff\xfe"[..], b"caf\xe9.toml", b"--data=\xff", b"2x3\x802"]
        .iter()
        .map(|b| std::ffi::OsString::from_vec(b.to_vec()))
        .collect();
    let cases: Vec<Vec<std::ffi::OsString>> = {
        let mut rng = swav_wgpu::rng::Rng::new(0xC11);
        let mut pick = |n: usize| ((rng.uniform() * n as f64) as usize).min(n - 1);
        (0..10_000)
            .map(|i| {
                let mut v: Vec<std::ffi::OsString> = seeds[i % seeds.len()].iter().map(|s| s.into()).collect();
                for _ in 0..1 + pick(3) {
                    let at = pick(v.len() + 1);
                    match pick(5) {
                        0 if at < v.len() => v[at] = junk[pick(junk.len())].into(),
                        4 => v.insert(at, bytes_junk[pick(bytes_junk.len())].clone()),
                        1 if at < v.len() && v.len() > 1 => {
                            v.remove(at);
                        }
                        2 if at < v.len() => {
                            let t = v[at].clone();
                            v.insert(at, t);
                        }
                        _ => v.insert(at, junk[pick(junk.len())].into()),
                    }
                }
                v
            })
            .collect()
    };
    let failures = std::sync::Mutex::new(Vec::new());
    let (failures_ref, dir) = (&failures, &d);
    std::thread::scope(|s| {
        for chunk in cases.chunks(cases.len() / 4) {
            s.spawn(move || {
                for args in chunk {
                    let out = bin().args(args).env("SWAV_WGPU_CHECK_ARGS", "1").current_dir(dir).output().unwrap();
                    let err = String::from_utf8_lossy(&out.stderr);
                    // Exit 0, 1 (an error of ours: "error: ...") or 2 (clap's usage error), never a
                    // panic or a backtrace.
                    let code = out.status.code();
                    let clean = match code {
                        Some(0) | Some(2) => true,
                        Some(1) => err.lines().any(|l| l.starts_with("error: ") && l.len() > 8),
                        _ => false,
                    };
                    if !clean || err.contains("panicked") || err.to_lowercase().contains("backtrace") {
                        failures_ref.lock().unwrap().push(format!("{args:?}: {code:?} {err}"));
                    } else if code != Some(0) && !names_some_input(&err, args) {
                        failures_ref.lock().unwrap().push(format!("{args:?}: the error names no input: {err}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let mut kinds: Vec<String> = failures
        .iter()
        .map(|f| f.split("error: ").nth(1).unwrap_or(f).lines().next().unwrap_or("").chars().take(70).collect())
        .collect();
    kinds.sort();
    kinds.dedup();
    // On failure: the kinds (first lines of their errors), then the first case whole.
    assert!(
        failures.is_empty(),
        "{} of 10,000 command lines failed badly:\n{}\nfirst: {}",
        failures.len(),
        kinds.join("\n"),
        failures[0]
    );
    // Checking arguments wrote nothing: the folder holds the config file alone.
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("c.toml")], "checking arguments wrote files");
    std::fs::remove_dir_all(&d).ok();
}

/// Whether an error message names something the command line gave: an argument, a flag's
/// name (as a flag, a config key or words), or the value after `=`; or, for a command line
/// that lacks something (no subcommand left), says what is missing.
fn names_some_input(err: &str, args: &[std::ffi::OsString]) -> bool {
    if err.contains("requires a subcommand but one was not provided") {
        return true;
    }
    args.iter().any(|a| {
        let a = a.to_string_lossy();
        let (flag, value) = a.split_once('=').unwrap_or((&a, ""));
        let name = flag.trim_start_matches('-');
        let keys = [a.to_string(), flag.to_string(), value.to_string(), name.replace('-', "_"), name.replace('-', " ")];
        // Quoted, any token; bare, one of two characters or more that is not dashes alone
        // (every message has dashes).
        keys.iter().any(|k| {
            let bare = k.chars().count() >= 2 && !k.chars().all(|c| c == '-') && err.contains(k.as_str());
            bare || err.contains(&format!("'{k}'"))
        })
    })
}

#[test]
fn only_the_backends_this_build_has_are_offered() {
    assert_fails_with(&["devices", "--backend", "gl"], "this build has no OpenGL backend; use vulkan, metal or dx12");
    assert_fails_with(&["devices", "--backend", "vulkan,opengl"], "no OpenGL backend");
    assert_fails_with(&["devices", "--backend", "cuda"], "unknown backend 'cuda': use vulkan, metal or dx12");
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    assert!(help.contains("vulkan, metal, dx12") && !help.contains(", gl"), "{help}");
}

/// A tiny run stopped at iteration `stop` (a checkpoint there): (folder, run dir).
fn tiny_run_stopped_at(name: &str, stop: usize) -> (PathBuf, PathBuf) {
    let (d, out_dir, args) = tiny_run(name, &["--stop-at", &stop.to_string()]);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (d, out_dir)
}

/// `train --resume run_dir --stop-at stop`, which must succeed; its stderr.
fn resume_to(run_dir: &Path, stop: usize) -> String {
    let out = run(&["train", "--resume", run_dir.to_str().unwrap(), "--stop-at", &stop.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// `--loss-scale dynamic` with an overflow injected at iteration 1: metrics.jsonl records
/// each step's scale, the skip and the running count of skips, the epoch line says how many
/// were skipped; a run stopped at 2 and resumed to 6 ends with the checkpoint (every tensor,
/// the scale and the counts) of the run that went through in one go.
#[test]
fn a_run_with_loss_scaling_records_its_skips_and_resumes_bit_exactly() {
    if !gpu_available() {
        return;
    }
    let scaled = ["--loss-scale", "dynamic", "--inject-overflow-at", "1"];
    let (d, whole, args) = tiny_run("scaled-whole", &[&scaled[..], &["--stop-at", "6"]].concat());
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.lines().any(|l| l.starts_with("epoch 1/") && l.contains("  skipped 1")), "{err}");
    let (d2, parts, args) = tiny_run("scaled-parts", &[&scaled[..], &["--stop-at", "2"]].concat());
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    resume_to(&parts, 6);
    assert!(checkpoint_bits(&whole) == checkpoint_bits(&parts), "the resumed run's tensors differ");
    let meta = |dir: &Path| swav_wgpu::io::read_metadata(&dir.join("checkpoint.safetensors")).unwrap();
    let (a, b) = (meta(&whole), meta(&parts));
    for key in ["iteration", "loss_scale", "loss_scale_clean_steps", "loss_scale_skipped"] {
        assert_eq!(a.get(key), b.get(key), "{key}");
    }
    assert_eq!((a["loss_scale"].as_str(), a["loss_scale_clean_steps"].as_str()), ("32768", "4"));
    for dir in [&whole, &parts] {
        let steps: Vec<(u64, f64, bool, u64)> = metrics_lines(dir)
            .iter()
            .filter(|v| v["loss"].is_number())
            .map(|v| {
                let skipped = v["skipped"].as_bool().expect("skipped");
                (
                    v["iteration"].as_u64().unwrap(),
                    v["loss_scale"].as_f64().unwrap(),
                    skipped,
                    v["skipped_steps"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(u64, f64, bool, u64)> =
            (0..6).map(|i| (i, if i < 2 { 65536.0 } else { 32768.0 }, i == 1, (i >= 1) as u64)).collect();
        assert_eq!(steps, want, "{}", dir.display());
    }
    std::fs::remove_dir_all(&d).ok();
    std::fs::remove_dir_all(&d2).ok();
}

#[test]
fn temporary_files_of_a_killed_run_are_removed_at_the_next_start() {
    let (d, out_dir) = tiny_run_stopped_at("dead-tmp", 1);
    // What a SIGKILL between a checkpoint's write and its rename leaves (a pid that has
    // ended: above Linux's pid_max), and a file of a live process (this test), which stays.
    let dead = out_dir.join(".checkpoint.safetensors.tmp-4000000");
    let live = out_dir.join(format!(".backbone.safetensors.tmp-{}", std::process::id()));
    std::fs::write(&dead, b"half a checkpoint").unwrap();
    std::fs::write(&live, b"being written").unwrap();
    let err = resume_to(&out_dir, 2);
    assert!(err.contains("removed 1 temporary file(s) of a killed run: .checkpoint.safetensors.tmp-4000000"), "{err}");
    assert!(!dead.exists() && live.exists());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn metrics_keep_one_row_per_iteration_across_resumes() {
    let (d, out_dir) = tiny_run_stopped_at("metrics-rows", 3);
    // What a run killed after its checkpoint at 3 leaves: rows of steps it will train again,
    // and a line cut off mid-write.
    let metrics = out_dir.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text += "{\"iteration\":3,\"epoch\":0,\"loss\":99.0}\n{\"iteration\":4,\"epoch\":0,\"loss\":99.0}\n{\"iteration\":5,\"lo";
    std::fs::write(&metrics, text).unwrap();
    resume_to(&out_dir, 6);
    let (steps, _) = iterations_and_epochs(&out_dir);
    assert_eq!(steps, (0..6).collect::<Vec<u64>>(), "one row per iteration");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(!text.contains("99.0") && !text.contains("\"lo\n"), "{text}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_metrics_row_that_cannot_be_written_stops_the_run_and_keeps_the_checkpoint() {
    let (d, out_dir) = tiny_run_stopped_at("metrics-full", 2);
    let before = checkpoint_bits(&out_dir);
    // metrics.jsonl on a full disk, in a way root cannot bypass: /dev/full takes the open
    // and refuses every write (ENOSPC).
    let metrics = out_dir.join("metrics.jsonl");
    std::fs::remove_file(&metrics).unwrap();
    std::os::unix::fs::symlink("/dev/full", &metrics).unwrap();
    let out = run(&["train", "--resume", out_dir.to_str().unwrap(), "--stop-at", "4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write") && err.contains("metrics.jsonl") && err.contains("intact"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(checkpoint_bits(&out_dir) == before, "the checkpoint changed");
    std::fs::remove_dir_all(&d).ok();
}

/// The options `swav-wgpu <cmd> --help` lists, and its whole text.
fn help(cmd: &[&str]) -> (std::collections::BTreeSet<String>, String) {
    let out = run(&[cmd, &["--help"]].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    let flags = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            // "-h, --help" or "--data <DATA>".
            let l = if l.starts_with('-') && !l.starts_with("--") { l.get(4..)? } else { l };
            let name: String =
                l.strip_prefix("--")?.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            Some(format!("--{name}"))
        })
        .collect();
    (flags, text)
}

/// The code of a markdown text with its line numbers: each line of its fenced blocks (a
/// line ending in `\` joined with the next, a `#` comment cut off) and each inline span.
fn markdown_code(md: &str) -> Vec<(usize, String)> {
    let mut code = Vec::new();
    let (mut fenced, mut prose, mut prose_line) = (false, String::new(), 1);
    let lines: Vec<&str> = md.lines().collect();
    let flush = |prose: &mut String, start: usize, code: &mut Vec<(usize, String)>| {
        let mut line = start;
        for (i, part) in prose.split('`').enumerate() {
            if i % 2 == 1 {
                // A table cell escapes its pipes.
                code.push((line, part.replace('\n', " ").replace("\\|", "|")));
            }
            line += part.matches('\n').count();
        }
        prose.clear();
    };
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("```") {
            if !fenced {
                flush(&mut prose, prose_line, &mut code);
            }
            fenced = !fenced;
            prose_line = i + 2;
        } else if fenced {
            let start = i;
            let mut text = lines[i].to_string();
            while text.trim_end().ends_with('\\') && i + 1 < lines.len() {
                i += 1;
                text = text.trim_end().trim_end_matches('\\').to_string() + " " + lines[i];
            }
            let text = text.split(" #").next().unwrap_or_default().to_string();
            code.push((start + 1, text));
        } else {
            prose.push_str(lines[i]);
            prose.push('\n');
        }
        i += 1;
    }
    flush(&mut prose, prose_line, &mut code);
    code
}

/// The `--flags` of a command line, each with the `a|b|c` choices that follow it, if any.
fn flags_in(text: &str) -> Vec<(String, Vec<String>)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_start_matches(['[', '(']);
        let Some(name) = w.strip_prefix("--") else { continue };
        let name: String = name.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        if name.is_empty() {
            continue;
        }
        let choices = match words.get(i + 1) {
            Some(v) if v.contains('|') => {
                v.split('|').map(|c| c.trim_end_matches([',', ')', ']']).to_string()).collect()
            }
            _ => Vec::new(),
        };
        out.push((format!("--{name}"), choices));
    }
    out
}

#[test]
fn every_command_and_flag_the_docs_name_exists() {
    // Flags of other tools the README names in passing.
    let others = [
        ("--features", "cargo"),
        ("--no-default-features", "cargo"),
        ("--device", "the PyTorch twin"),
        ("--tf32", "the PyTorch twin"),
        ("--enable-unsafe-webgpu", "Chromium"),
        ("--bin", "benches/gpu/run.sh"),
        ("--debs", "benches/gpu/run.sh"),
    ];
    let (_, main_help) = help(&[]);
    let commands: Vec<String> = main_help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(commands.len() >= 7, "{main_help}");
    let mut helps = std::collections::BTreeMap::new();
    for c in &commands {
        match c.as_str() {
            "help" => {}
            "eval" => {
                for sub in ["knn", "linear"] {
                    helps.insert(format!("eval {sub}"), help(&["eval", sub]));
                }
            }
            _ => {
                helps.insert(c.clone(), help(&[c]));
            }
        }
    }
    let all_flags: std::collections::BTreeSet<&String> = helps.values().flat_map(|(f, _)| f).collect();
    let all_text: String = helps.values().map(|(_, t)| t.as_str()).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for doc in ["README.md", "CONTRIBUTING.md", "configs/README.md", "benches/README.md"] {
        let md = std::fs::read_to_string(root.join(doc)).unwrap();
        for (line, code) in markdown_code(&md) {
            let at = ["swav-wgpu ", "cargo run --release -- "].iter().find_map(|p| code.find(p).map(|i| i + p.len()));
            match at {
                Some(at) => {
                    // A command line: its subcommand, and each flag in that subcommand's --help.
                    let rest = &code[at..];
                    let mut words = rest.split_whitespace();
                    let sub = words.next().unwrap_or_default().trim_end_matches([',', '.', ':', '`']);
                    let key =
                        if sub == "eval" { format!("eval {}", words.next().unwrap_or_default()) } else { sub.into() };
                    let Some((flags, text)) = helps.get(&key) else {
                        wrong.push(format!("{doc}:{line}: `swav-wgpu {key}` is no command ({commands:?})"));
                        continue;
                    };
                    checked += 1;
                    for (flag, choices) in flags_in(&rest[sub.len()..]) {
                        if !flags.contains(&flag) {
                            wrong.push(format!("{doc}:{line}: `swav-wgpu {key}` has no {flag}"));
                        }
                        for c in choices.iter().filter(|c| !text.contains(c.as_str())) {
                            wrong
                                .push(format!("{doc}:{line}: {flag} {c}: not a choice `swav-wgpu {key} --help` names"));
                        }
                    }
                }
                // A flag named on its own in the README: some subcommand's, or another tool's.
                None if doc == "README.md" && code.starts_with("--") => {
                    for (flag, choices) in flags_in(&code) {
                        checked += 1;
                        let other = others.iter().any(|(f, _)| *f == flag);
                        // The fault flags of test builds are hidden from --help, but taken.
                        let hidden = || {
                            let out =
                                bin().args(["train", &flag, "1"]).env("SWAV_WGPU_CHECK_ARGS", "1").output().unwrap();
                            out.status.success()
                        };
                        if !other && !all_flags.contains(&flag) && !hidden() {
                            wrong.push(format!("README.md:{line}: {flag} is no flag of any subcommand"));
                        }
                        for c in choices.iter().filter(|c| !all_text.contains(c.as_str())) {
                            wrong.push(format!("README.md:{line}: {flag} {c}: not a choice any --help names"));
                        }
                    }
                }
                None => {}
            }
        }
    }
    assert!(checked > 100, "only {checked} commands and flags found: is the extraction broken?");
    assert!(wrong.is_empty(), "the docs name what the binary does not offer:\n{}", wrong.join("\n"));
}

/// `swav-wgpu plan` takes train's flags, prints the memory by kind and, last, the peak; it
/// trains nothing and writes no run folder.
#[test]
fn plan_prints_the_memory_by_kind_and_the_peak_without_training() {
    let dir = std::env::temp_dir().join(format!("swav-plan-{}", std::process::id()));
    let out = dir.join("run");
    let o = bin()
        .args(["plan", "--arch", "resnet18", "--batch-size", "8", "--crops", "2x32,2x16", "--out"])
        .arg(&out)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    for kind in ["weights", "optimizer state", "gradients", "activations", "workspace"] {
        assert!(stdout.contains(kind), "no {kind} in:\n{stdout}");
    }
    let last = stdout.lines().last().unwrap_or_default();
    let gib: f64 =
        last.strip_prefix("peak device memory: ").and_then(|s| s.strip_suffix(" GiB")).unwrap().parse().unwrap();
    assert!(gib > 0.0 && gib < 4.0, "{last}");
    assert!(!out.exists(), "plan wrote a run folder");
    let bad = bin().args(["plan", "--batch-size", "1"]).env("XDG_CACHE_HOME", dir.join("cache")).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("batch size"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--precision`: f16 halves the activations in the plan and says so; auto says what it chose
/// and why; an adapter without shader-f16 (`SWAV_WGPU_NO_F16=1` makes lavapipe one) runs f32
/// under auto with a one-line notice, and `--precision f16` there is a clear error.
#[test]
fn precision_f16_halves_the_activations_and_falls_back_clearly() {
    let dir = std::env::temp_dir().join(format!("swav-precision-{}", std::process::id()));
    let plan = |precision: &str, no_f16: bool| {
        let mut c = bin();
        // Crops large enough that the backbone's activations outweigh the (f32) head's.
        c.args(["plan", "--batch-size", "8", "--crops", "2x96,2x32", "--prototypes", "32", "--hidden-mlp", "64"]);
        c.args(["--precision", precision]);
        c.env("XDG_CACHE_HOME", dir.join("cache"));
        if no_f16 {
            c.env("SWAV_WGPU_NO_F16", "1");
        }
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let activations = |stdout: &str| -> f64 {
        let line = stdout.lines().find(|l| l.trim_start().starts_with("activations and their gradients")).unwrap();
        line.split_whitespace().rev().nth(1).unwrap().parse().unwrap()
    };
    let (ok, f32_out, err) = plan("f32", false);
    assert!(ok, "{err}");
    let (ok, f16_out, err) = plan("f16", false);
    assert!(ok, "{err}");
    assert!(f16_out.contains("f16 activations"), "{f16_out}");
    let ratio = activations(&f16_out) / activations(&f32_out);
    assert!((0.45..0.62).contains(&ratio), "f16 activations are {ratio:.3} of f32's:\n{f32_out}\n{f16_out}");
    let (ok, _, err) = plan("auto", false);
    assert!(ok && err.contains("precision auto: f") && err.contains("a 3x3 conv's three passes: f16"), "{err}");
    let (ok, out, err) = plan("auto", true);
    assert!(ok && err.contains("precision auto: f32 (") && err.contains("has no shader-f16"), "{err}");
    assert!(out.contains("f32 activations"), "{out}");
    let (ok, _, err) = plan("f16", true);
    assert!(!ok && err.contains("--precision f16 needs an adapter with shader-f16"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each file of a run folder with its modification time and bytes.
fn folder_snapshot(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = if p.is_file() { std::fs::read(&p).unwrap() } else { Vec::new() };
            (p.clone(), std::fs::metadata(&p).unwrap().modified().unwrap(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// The flags of `train --help` that are train's own (not the global device flags).
fn train_flags() -> std::collections::BTreeSet<String> {
    let (global, _) = help(&[]);
    let (train, _) = help(&["train"]);
    train.difference(&global).cloned().collect()
}

#[test]
fn every_train_flag_on_a_resume_is_applied_and_said_or_refused() {
    let (d, run_dir) = tiny_run_stopped_at("resume-flags", 1);
    let run_s = run_dir.to_str().unwrap();
    let had = swav_wgpu::train::TrainConfig::from_toml(&std::fs::read_to_string(run_dir.join("config.toml")).unwrap())
        .unwrap();
    let other = d.join("other");
    tiny_folder(&other);
    let config = d.join("lr.toml");
    std::fs::write(&config, "lr = 0.25\n").unwrap();
    let run2 = d.join("run2");
    let (queue, starts, niters, seed) = (
        (had.queue_length + 64).to_string(),
        (had.epoch_queue_starts + 1).to_string(),
        (had.freeze_prototypes_niters + 1).to_string(),
        (had.seed + 1).to_string(),
    );
    let optimizer = if had.optimizer.to_string() == "sgd" { "adam" } else { "sgd" };
    assert_ne!(had.lr, 0.5);
    assert!(!had.sync_bn);
    // (flags, what the error must name: the flag, the given value, the run's value).
    let refused: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["--arch", "resnet34"], vec!["--arch".into(), "resnet34".into(), "arch = resnet18".into()]),
        (vec!["--width", "0.125"], vec!["--width".into(), "0.125".into(), "width = 0.0625".into()]),
        (vec!["--stem", "imagenet"], vec!["--stem".into(), "imagenet".into(), format!("stem = {}", had.stem)]),
        (vec!["--batch-size", "2"], vec!["--batch-size".into(), "gives 2".into(), "batch_size = 4".into()]),
        (vec!["--crops", "2x16"], vec!["--crops".into(), "gives 2x16 ".into(), "crops = 2x16,2x8".into()]),
        (vec!["--prototypes", "16"], vec!["--prototypes".into(), "gives 16".into(), "prototypes = 8".into()]),
        (vec!["--feat-dim", "4"], vec!["--feat-dim".into(), "gives 4".into(), "feat_dim = 8".into()]),
        (vec!["--hidden-mlp", "0"], vec!["--hidden-mlp".into(), "gives 0".into(), "hidden_mlp = 16".into()]),
        (
            vec!["--queue-length", &queue],
            vec![format!("--queue-length gives {queue}"), format!("= {}", had.queue_length)],
        ),
        (
            vec!["--epoch-queue-starts", &starts],
            vec![format!("--epoch-queue-starts gives {starts}"), format!("= {}", had.epoch_queue_starts)],
        ),
        (vec!["--lr", "0.5"], vec!["--lr gives 0.5".into(), format!("lr = {}", had.lr)]),
        (
            vec!["--optimizer", optimizer],
            vec![format!("--optimizer gives {optimizer}"), format!("= {}", had.optimizer)],
        ),
        (vec!["--epsilon", "0.5"], vec!["--epsilon gives 0.5".into(), format!("epsilon = {}", had.epsilon)]),
        (vec!["--temperature", "0.5"], vec!["--temperature gives 0.5".into(), format!("= {}", had.temperature)]),
        (
            vec!["--freeze-prototypes-niters", &niters],
            vec![format!("--freeze-prototypes-niters gives {niters}"), format!("= {}", had.freeze_prototypes_niters)],
        ),
        (vec!["--seed", &seed], vec![format!("--seed gives {seed}"), format!("seed = {}", had.seed)]),
        (vec!["--max-side", "99"], vec!["--max-side gives 99".into(), format!("max_side = {}", had.max_side)]),
        (vec!["--sync-bn"], vec!["--sync-bn gives true".into(), "sync_bn = false".into()]),
        (vec!["--precision", "f16"], vec!["--precision gives f16".into(), "precision = f32".into()]),
        (vec!["--loss-scale", "dynamic"], vec!["--loss-scale gives dynamic".into(), "loss_scale = off".into()]),
        (
            vec!["--config", config.to_str().unwrap()],
            vec![format!("--config '{}' (key lr) gives 0.25", config.display()), format!("lr = {}", had.lr)],
        ),
        (
            vec!["--data", other.to_str().unwrap()],
            vec![format!("not --data '{}'", canonical(&other)), canonical(&d.join("data"))],
        ),
        (vec!["--out", run2.to_str().unwrap()], vec!["--out".into(), "run2".into(), "another folder".into()]),
        (vec!["--stop-at", "1"], vec!["--stop-at 1".into(), "already at iteration 1".into()]),
    ];
    let before = folder_snapshot(&run_dir);
    let mut covered: std::collections::BTreeSet<String> = ["--resume", "--help"].map(String::from).into();
    for (flags, needles) in &refused {
        covered.insert(flags[0].to_string());
        let out = run(&[&["train", "--resume", run_s], flags.as_slice()].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("adapter:"), "{flags:?}: {err}");
        for n in needles {
            assert!(err.contains(n.as_str()), "{flags:?}: expected '{n}' in: {err}");
        }
    }
    assert!(before == folder_snapshot(&run_dir), "a refused resume changed the run folder");
    assert!(!run2.exists());

    // The run's own values are no change; what may change is applied and said first.
    let test_dir = d.join("test");
    tiny_folder(&test_dir);
    let cache = d.join("cache");
    let same: Vec<String> = [
        "--arch",
        "resnet18",
        "--width",
        "0.0625",
        "--stem",
        &had.stem.to_string(),
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
        "--queue-length",
        &had.queue_length.to_string(),
        "--epoch-queue-starts",
        &had.epoch_queue_starts.to_string(),
        "--lr",
        &had.lr.to_string(),
        "--optimizer",
        &had.optimizer.to_string(),
        "--loss-scale",
        &had.loss_scale.to_string(),
        "--epsilon",
        &had.epsilon.to_string(),
        "--temperature",
        &had.temperature.to_string(),
        "--freeze-prototypes-niters",
        &had.freeze_prototypes_niters.to_string(),
        "--seed",
        &had.seed.to_string(),
        "--precision",
        "f32",
        "--max-side",
        &had.max_side.to_string(),
        "--config",
        run_dir.join("config.toml").to_str().unwrap(),
        "--data",
        d.join("data").to_str().unwrap(),
        "--out",
        run_s,
    ]
    .map(String::from)
    .into();
    let applied = [
        "--epochs",
        "3",
        "--test-data",
        test_dir.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--eval-every",
        "1",
        "--stop-at",
        "5",
    ];
    for (flags, _) in refused.iter().filter(|(f, _)| !["--sync-bn", "--stop-at"].contains(&f[0])) {
        assert!(same.contains(&flags[0].to_string()), "{} is not also given with the run's own value", flags[0]);
    }
    let mut args: Vec<&str> = vec!["train", "--resume", run_s];
    args.extend(same.iter().map(String::as_str));
    args.extend(applied);
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let first: Vec<&str> = err.lines().take(6).collect();
    for want in [
        format!("resume: --epochs 3 (the run had {})", had.epochs),
        format!("resume: --test-data {} (the run had none)", canonical(&test_dir)),
        format!("resume: --cache-dir {} (the run had ", std::path::absolute(&cache).unwrap().display()),
        "resume: --stop-at 5 (the run is at iteration 1)".into(),
        "resume: --eval-every 1".into(),
    ] {
        assert!(first.iter().any(|l| l.starts_with(&want)), "expected '{want}' in the first lines: {err}");
    }
    assert_eq!(err.matches("resume: ").count(), 5, "only the applied flags are said: {err}");
    // They took effect: 3 epochs of 4 iterations recorded, a k-NN on the test data after
    // epoch 1, the stop at 5, a dataset cache in --cache-dir.
    let now = swav_wgpu::train::TrainConfig::from_toml(&std::fs::read_to_string(run_dir.join("config.toml")).unwrap())
        .unwrap();
    assert_eq!((now.epochs, now.test_data.as_deref()), (3, Some(canonical(&test_dir).as_str())));
    assert!(err.contains("epoch 1/3") && err.contains("stopped at iteration 5 of 12"), "{err}");
    let (_, epochs) = iterations_and_epochs(&run_dir);
    assert!(epochs[0]["knn_top1"].is_number(), "{epochs:?}");
    assert!(std::fs::read_dir(&cache).unwrap().count() > 0, "no dataset cache in --cache-dir");
    // --checkpoint-every 1: a NaN at iteration 7 leaves the checkpoint of iteration 7 (the run
    // would otherwise have saved at 5 and the epoch's end, 8).
    let out = run(&["train", "--resume", run_s, "--checkpoint-every", "1", "--inject-nan-at", "7"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().any(|l| l.starts_with("resume: --checkpoint-every 1")), "{err}");
    let meta = swav_wgpu::io::read_metadata(&run_dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta["iteration"], "7");
    // Every flag of `train --help` is refused above or applied here (a new flag must join one).
    covered.extend(applied.iter().filter(|s| s.starts_with("--")).map(|s| s.to_string()));
    covered.insert("--checkpoint-every".into());
    let missed: Vec<String> = train_flags().difference(&covered).cloned().collect();
    assert!(missed.is_empty(), "train flags no resume test exercises: {missed:?}");
    std::fs::remove_dir_all(&d).ok();
}

/// The result line of `eval linear`:
/// `linear probe top-1 (WHAT): X % (C classes, N train / M test images)` as
/// (WHAT, X, [C, N, M]).
fn linear_probe_line(stdout: &str) -> (String, f64, Vec<usize>) {
    let prefix = "linear probe top-1 (";
    let line = stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no top-1 line: {stdout}"));
    let (what, rest) = line[prefix.len()..].split_once("): ").unwrap_or_else(|| panic!("{line}"));
    let (top1, counts) = rest.split_once(" % (").unwrap_or_else(|| panic!("{line}"));
    let top1: f64 = top1.parse().unwrap_or_else(|e| panic!("top-1 '{top1}' in '{line}': {e}"));
    let counts = counts.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.parse().unwrap());
    (what.to_string(), top1, counts.collect())
}

/// `eval linear` on a trained run and on its random-init baseline: each prints a top-1 that is
/// a number in [0, 100] and a whole count of the test images it names, for the classes and
/// images the data has (2 classes, 16 training images, 6 test images).
#[test]
fn eval_linear_prints_a_top1_in_range_for_the_data_it_read() {
    if !gpu_available() {
        return;
    }
    let (d, run_dir) = tiny_run_stopped_at("eval-linear", 4);
    let test = d.join("test");
    image_folder(&test, 3);
    let (data, test) = (d.join("data").display().to_string(), test.display().to_string());
    let eval = |source: &[&str]| {
        let mut args = vec!["eval", "linear", "--epochs", "5", "--test-data", &test];
        args.extend(source);
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let trained = eval(&["--checkpoint", run_dir.to_str().unwrap()]);
    let baseline = eval(&["--random-init", "--data", &data, "--width", "0.0625"]);
    for (stdout, expected) in [(trained, "checkpoint"), (baseline, "random init")] {
        let (what, top1, counts) = linear_probe_line(&stdout);
        assert_eq!(what, expected, "{stdout}");
        assert!(top1.is_finite() && (0.0..=100.0).contains(&top1), "{stdout}");
        assert_eq!(counts, [2, 16, 6], "classes, train and test images: {stdout}");
        let correct = top1 * 6.0 / 100.0;
        assert!((correct - correct.round()).abs() < 1e-3, "{top1} % is not a count of 6 images: {stdout}");
    }
    std::fs::remove_dir_all(&d).ok();
}

/// `embed` writes "features" [images, backbone width] (finite, L2-normalised rows) and
/// "labels" (the dataset's class indices), and the same checkpoint gives the same file.
#[test]
fn embed_writes_a_normalised_row_and_the_label_of_every_image_deterministically() {
    if !gpu_available() {
        return;
    }
    let (d, run_dir) = tiny_run_stopped_at("embed", 4);
    let meta = swav_wgpu::train::Trainer::checkpoint_meta(&run_dir.join("checkpoint.safetensors")).unwrap();
    let dim = meta.config.backbone().unwrap().feature_dim();
    assert_eq!(dim, 32, "ResNet-18 at width 1/16: 512 / 16 features");
    let embed = |name: &str| {
        let file = d.join(name);
        let out = run(&["embed", "--checkpoint", run_dir.to_str().unwrap(), "--out", file.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with(&format!("wrote 16 features of dimension {dim} to ")), "{stdout}");
        swav_wgpu::io::load_safetensors(&file).unwrap()
    };
    let first = embed("first.safetensors");
    assert_eq!(first.keys().collect::<Vec<_>>(), ["features", "labels"]);
    let (features, labels) = (&first["features"], &first["labels"]);
    assert_eq!(features.shape, [16, dim]);
    assert!(features.data.iter().all(|v| v.is_finite()), "non-finite features");
    for row in features.data.chunks(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "a feature row of norm {norm}");
    }
    let opts = swav_wgpu::data::OpenOptions { max_side: 64, cache_dir: Some(d.join("cache")), quiet: true };
    let dataset = swav_wgpu::data::open(Some(&d.join("data")), &opts).unwrap().train;
    let expected: Vec<f32> = dataset.labels.unwrap().iter().map(|&l| l as f32).collect();
    assert_eq!(labels.shape, [16]);
    assert_eq!(labels.data, expected, "labels are not the dataset's class indices");
    assert_eq!(expected.iter().filter(|&&l| l == 0.0).count(), 8, "8 images of class 'a' (0)");
    assert_eq!(expected.iter().filter(|&&l| l == 1.0).count(), 8, "8 images of class 'b' (1)");
    let second = embed("second.safetensors");
    let bits = |t: &swav_wgpu::io::NamedTensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(bits(&second["features"]) == bits(features), "two embeds of one checkpoint differ");
    assert_eq!(second["labels"].data, labels.data);
    std::fs::remove_dir_all(&d).ok();
}
