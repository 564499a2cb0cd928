//! Data-parallel training over real MPI: `mpirun -np 2` on this machine (both ranks on one
//! adapter; `--oversubscribe` for 2 cores). Built with `--features mpi`; without an `mpirun`
//! these tests fail (CI installs OpenMPI), they never skip.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_swav-wgpu");
/// A small job: 2 ranks x batch 8, a queue of 16 rows per rank.
const TINY: &[&str] = &["--width", "0.125", "--batch-size", "8", "--queue-length", "32", "--epochs", "1"];

fn mpirun(np: usize) -> Command {
    let found = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "mpirun not found: install OpenMPI (apt-get install -y openmpi-bin libopenmpi-dev)");
    let mut c = Command::new("mpirun");
    // OpenMPI refuses root without these (CI containers run as root).
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.args(["--oversubscribe", "-np", &np.to_string(), BIN]);
    c
}

fn run(np: usize, args: &[&str]) -> Output {
    let out = mpirun(np).args(args).output().expect("mpirun starts");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mpirun -np {np} {args:?} failed:\n{text}");
    out
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("swav-wgpu-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn two_ranks_with_sync_bn_compute_what_one_process_computes() {
    let out = run(2, &["check-parallel", "--sync-bn", "--width", "0.125", "--batch-size", "4", "--steps", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 ranks vs one process") && text.contains("ok: within 1e-5"), "{text}");
}

#[test]
fn two_ranks_without_sync_bn_give_the_codes_of_one_sinkhorn() {
    let out = run(2, &["check-parallel", "--width", "0.125", "--batch-size", "4", "--steps", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("per-rank batch-norm") && text.contains("ok:"), "{text}");
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn tensors(p: &Path) -> std::collections::BTreeMap<String, swav_wgpu::io::NamedTensor> {
    swav_wgpu::io::load_safetensors(p).expect("checkpoint loads")
}

#[test]
fn a_two_rank_queue_run_resumes_bit_exactly() {
    let d = tmpdir("resume");
    let (a, b) = (d.join("a"), d.join("b"));
    let with = |out: &Path, extra: &[&str]| {
        let mut v = vec!["train", "--out", out.to_str().expect("utf-8")];
        v.extend(TINY);
        v.extend(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let straight = with(&a, &["--stop-at", "10"]);
    run(2, &args(&straight));
    let first = with(&b, &["--stop-at", "5"]);
    run(2, &args(&first));
    let out = run(2, &["train", "--resume", b.to_str().expect("utf-8"), "--stop-at", "10"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed from"), "{out:?}");
    let (ta, tb) = (tensors(&a.join("checkpoint.safetensors")), tensors(&b.join("checkpoint.safetensors")));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    // Both ranks' queues are in the checkpoint (2 x 16 rows), and in use by iteration 10.
    assert_eq!(ta["queue.0"].shape[0], 32);
    assert!(ta["queue.0"].data.iter().all(|v| *v != 0.0), "the queue was not filled");
    for (name, t) in &ta {
        assert!(t.data == tb[name].data, "'{name}' differs after the resume");
    }
    // The losses after the resume are those of the run that never stopped.
    let losses = |p: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(p.join("metrics.jsonl")).expect("metrics");
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["loss"].is_number())
            .map(|v| format!("{} {}", v["iteration"], v["loss"]))
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));
    // One process cannot continue a two-rank run.
    let single = Command::new(BIN).args(["train", "--resume", a.to_str().expect("utf-8")]).output().expect("runs");
    let err = String::from_utf8_lossy(&single.stderr);
    assert_eq!(single.status.code(), Some(1), "{err}");
    assert!(err.contains("2 rank(s)") && err.contains("same number of ranks"), "{err}");
}

/// The pid of rank `rank` among the children of `mpirun` (OpenMPI starts them directly).
fn rank_pid(mpirun: u32, rank: usize) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{mpirun}/task/{mpirun}/children")).ok()?;
    children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).find(|pid| {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        env.split(|b| *b == 0).any(|kv| kv == format!("OMPI_COMM_WORLD_RANK={rank}").as_bytes())
    })
}

/// A two-rank job training until stopped, checkpointing every 2 iterations, once it has
/// a checkpoint and a few steps; and where it writes.
struct Job {
    child: std::process::Child,
    dir: PathBuf,
    out: PathBuf,
}

impl Job {
    fn start(name: &str, comm_timeout_s: u32) -> Job {
        let dir = tmpdir(name);
        let out = dir.join("run");
        let log = std::fs::File::create(dir.join("stderr.log")).expect("log");
        let mut args = vec!["train", "--out", out.to_str().expect("utf-8"), "--checkpoint-every", "2"];
        args.extend(TINY);
        let mut cmd = mpirun(2);
        cmd.env("SWAV_WGPU_COMM_TIMEOUT", comm_timeout_s.to_string()).args(&args);
        let mut child = cmd.stdout(Stdio::null()).stderr(log).spawn().expect("mpirun starts");
        let start = Instant::now();
        let ckpt = out.join("checkpoint.safetensors");
        while !(ckpt.exists()
            && std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|m| m.lines().count() >= 6))
        {
            assert!(start.elapsed() < Duration::from_secs(300), "training did not start");
            assert!(child.try_wait().expect("wait").is_none(), "the job ended early");
            std::thread::sleep(Duration::from_millis(200));
        }
        Job { child, dir, out }
    }

    /// Sends `signal` to rank 1, then waits (at most 60 s) for the job to end; its exit
    /// status and stderr.
    fn signal_rank_1(mut self, signal: &str) -> (std::process::ExitStatus, String, PathBuf) {
        let victim = rank_pid(self.child.id(), 1).expect("rank 1's process");
        assert!(Command::new("kill").args([signal, &victim.to_string()]).status().expect("kill").success());
        let sent = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if sent.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = Command::new("kill").args(["-KILL", &victim.to_string()]).status();
                panic!("the job still runs 60 s after kill {signal} of rank 1");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let err = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        println!(
            "the job ended {:.1} s after kill {signal} of rank 1 ({status}):\n{err}",
            sent.elapsed().as_secs_f64()
        );
        assert!(!status.success(), "the job exited successfully after losing a rank:\n{err}");
        (status, err, self.out)
    }
}

/// The run's last checkpoint is whole (written atomically) and loads; the job continues
/// from it.
fn continues(out: &Path) {
    let ckpt = out.join("checkpoint.safetensors");
    let meta = swav_wgpu::io::read_metadata(&ckpt).expect("metadata");
    let saved: usize = meta["iteration"].parse().expect("iteration");
    assert!(saved >= 2 && saved.is_multiple_of(2), "checkpoint at iteration {saved}");
    assert_eq!(tensors(&ckpt)["queue.0"].shape[0], 32);
    let stop = (saved + 2).to_string();
    let done = run(2, &["train", "--resume", out.to_str().expect("utf-8"), "--stop-at", &stop]);
    let text = String::from_utf8_lossy(&done.stderr);
    assert!(
        text.contains(&format!("iteration {saved}")) && text.contains(&format!("stopped at iteration {stop}")),
        "{text}"
    );
}

#[test]
fn a_killed_rank_stops_the_job_within_a_minute_and_the_last_checkpoint_loads() {
    let (_, err, out) = Job::start("kill", 300).signal_rank_1("-KILL");
    assert!(err.contains("rank 1") && err.contains("signal 9"), "no clear message:\n{err}");
    continues(&out);
}

#[test]
fn a_hung_rank_stops_the_job_after_the_communication_timeout() {
    // A stopped (not dead) process: MPI sees nothing wrong; the other rank's exchange times out.
    let (_, err, out) = Job::start("hang", 10).signal_rank_1("-STOP");
    assert!(err.contains("no word from the other ranks for 10 s"), "no clear message:\n{err}");
    continues(&out);
}

#[test]
fn two_ranks_build_the_dataset_cache_once_on_a_shared_folder() {
    let d = tmpdir("cache");
    let photos = d.join("photos");
    swav_wgpu::testing::write_photo_folder(&photos, 2, 16, &[(320, 240), (240, 320)], 11);
    let cache = d.join("cache");
    let out = run(
        2,
        &[
            "train",
            "--data",
            photos.to_str().expect("utf-8"),
            "--cache-dir",
            cache.to_str().expect("utf-8"),
            "--out",
            d.join("run").to_str().expect("utf-8"),
            "--width",
            "0.0625",
            "--batch-size",
            "4",
            "--crops",
            "2x16",
            "--stop-at",
            "2",
        ],
    );
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches("dataset cache: decoding 32 images").count(), 1, "built once:\n{text}");
    let files: Vec<_> = std::fs::read_dir(&cache).expect("cache dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(files.len(), 1, "one cache, no lock or temporary file: {files:?}");
}
