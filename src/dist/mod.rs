//! Data-parallel training's communication: the `Collective` a compiled plan calls at its
//! exchange points (all-reduce of gradients, of Sinkhorn's per-prototype sums, of synchronised
//! batch-norm statistics) and the trainer calls around checkpoints (gathering per-rank queues).
//!
//! `Solo` is a world of one (every call is the identity), so a single process runs the same
//! code; `Threads` is a world of N threads in one process, for tests without MPI; `mpi` (cargo
//! feature `mpi`, native only) is the real one over MPI (`mpirun`, `srun`).
#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub mod mpi;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};

/// How values from the ranks combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Max,
}

impl Reduce {
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Reduce::Sum => a + b,
            Reduce::Max => a.max(b),
        }
    }
}

/// The ranks of one training job. Every rank makes the same calls in the same order.
pub trait Collective: Send + Sync {
    /// This process's index in the world, 0 ..world.
    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// Index among the ranks on this machine (picks the adapter).
    fn local_rank(&self) -> usize;
    /// Combines `data` over all ranks, in place, on every rank.
    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<()>;
    /// Every rank's `data` (the same length on each) one after another in rank order, on
    /// every rank.
    fn all_gather(&self, data: &[f32]) -> Result<Vec<f32>>;
    /// What the world is, for messages ("MPI world of 2 (rank 0)").
    fn describe(&self) -> String;
    /// Stops every rank of the job (a rank that failed must not leave the others waiting).
    /// One process: nothing to do, the caller exits.
    fn abort(&self, _code: i32) {}
}

/// A world of one: the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn all_reduce(&self, _: &mut [f32], _: Reduce) -> Result<()> {
        Ok(())
    }
    fn all_gather(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }
    fn describe(&self) -> String {
        "one process".into()
    }
}

/// The world of this process: MPI's when built with the `mpi` feature and started by
/// `mpirun`/`srun` with more than one rank (or `SWAV_WGPU_MPI=1`), else `Solo`. A build
/// without MPI started as one of several ranks is an error: each rank would train its own
/// copy of the model into the same run folder.
pub fn world() -> Result<Arc<dyn Collective>> {
    #[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
    if mpi::launched_by_mpi() {
        return Ok(Arc::new(mpi::MpiWorld::init()?));
    }
    #[cfg(not(all(feature = "mpi", not(target_arch = "wasm32"))))]
    without_mpi(|k| std::env::var(k).ok())?;
    Ok(Arc::new(Solo))
}

/// What an MPI launcher sets in each rank's own environment: the world size. (Slurm's
/// SLURM_NTASKS is left out: a batch script that runs one process has it too.)
const RANK_VARIABLES: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"];

/// The launcher variable that says this process is one of several ranks, and how many.
pub fn launched_ranks(env: impl Fn(&str) -> Option<String>) -> Option<(&'static str, usize)> {
    RANK_VARIABLES
        .iter()
        .find_map(|&k| env(k).and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 1).map(|n| (k, n)))
}

/// The check a build without the `mpi` feature makes of its environment (`env`).
pub fn without_mpi(env: impl Fn(&str) -> Option<String>) -> Result<()> {
    match launched_ranks(env) {
        Some((var, n)) => Err(crate::error::Error::Invalid(format!(
            "this process is one of {n} ranks started by an MPI launcher ({var}={n}), but this swav-wgpu \
             was built without MPI, so every rank would train its own copy into the same run folder. \
             Rebuild with `cargo build --release --features mpi` (README: \"Several GPUs and machines\"), \
             or start one process"
        ))),
        None => Ok(()),
    }
}

/// How long a rank waits for the others in one exchange before it stops the job: a rank that
/// died or hangs must not leave the rest blocked for ever. `SWAV_WGPU_COMM_TIMEOUT` (seconds)
/// overrides the default of 300 s (long enough for rank 0's k-NN evaluation between steps).
pub fn comm_timeout() -> Duration {
    let secs = std::env::var("SWAV_WGPU_COMM_TIMEOUT").ok().and_then(|v| v.parse::<f64>().ok());
    Duration::from_secs_f64(secs.filter(|s| *s > 0.0).unwrap_or(300.0))
}

/// A world of `n` threads in one process (tests of the distributed paths without MPI): each
/// thread takes one of `Threads::world(n)` and they meet at every call, like MPI ranks.
pub struct Threads {
    rank: usize,
    shared: Arc<ThreadsShared>,
}

struct ThreadsShared {
    n: usize,
    state: Mutex<Meeting>,
    turn: Condvar,
}

/// One collective call in progress: what the ranks have put in, and how many have taken
/// the result out (the next call starts once all have).
#[derive(Default)]
struct Meeting {
    generation: u64,
    contributions: Vec<Option<Vec<f32>>>,
    result: Option<Vec<Vec<f32>>>,
    taken: usize,
}

impl Threads {
    pub fn world(n: usize) -> Vec<Threads> {
        let shared = Arc::new(ThreadsShared {
            n,
            state: Mutex::new(Meeting { contributions: vec![None; n], ..Default::default() }),
            turn: Condvar::new(),
        });
        (0..n).map(|rank| Threads { rank, shared: shared.clone() }).collect()
    }

    /// Every rank's data, in rank order, once all have arrived.
    fn meet(&self, data: &[f32]) -> Result<Vec<Vec<f32>>> {
        let s = &self.shared;
        let timeout = comm_timeout();
        fn lock_err<T>(_: T) -> Error {
            Error::Invalid("a rank thread panicked during a collective".into())
        }
        let mut m = s.state.lock().map_err(lock_err)?;
        // Wait until the previous call's result has been taken by everyone.
        while m.result.is_some() {
            let (g, t) = s.turn.wait_timeout(m, timeout).map_err(lock_err)?;
            m = g;
            if t.timed_out() {
                return Err(timed_out(self.rank));
            }
        }
        m.contributions[self.rank] = Some(data.to_vec());
        let generation = m.generation;
        if m.contributions.iter().all(Option::is_some) {
            m.result = Some(m.contributions.iter_mut().map(|c| c.take().unwrap_or_default()).collect());
            s.turn.notify_all();
        }
        while m.generation == generation && m.result.is_none() {
            let (g, t) = s.turn.wait_timeout(m, timeout).map_err(lock_err)?;
            m = g;
            if t.timed_out() && m.result.is_none() {
                return Err(timed_out(self.rank));
            }
        }
        let out = m.result.clone().unwrap_or_default();
        m.taken += 1;
        if m.taken == s.n {
            m.taken = 0;
            m.result = None;
            m.generation += 1;
            s.turn.notify_all();
        }
        Ok(out)
    }
}

pub(crate) fn timed_out(rank: usize) -> Error {
    Error::Invalid(format!(
        "rank {rank}: no word from the other ranks for {:.0} s in a collective call — a rank died or hangs; stopping (SWAV_WGPU_COMM_TIMEOUT sets the wait)",
        comm_timeout().as_secs_f64()
    ))
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world(&self) -> usize {
        self.shared.n
    }
    fn local_rank(&self) -> usize {
        self.rank
    }
    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<()> {
        let all = self.meet(data)?;
        if all.iter().any(|a| a.len() != data.len()) {
            return Err(Error::Invalid("ranks all-reduced buffers of different lengths".into()));
        }
        // Rank order, as a deterministic MPI reduction would.
        for (i, v) in data.iter_mut().enumerate() {
            *v = all.iter().skip(1).fold(all[0][i], |acc, a| op.apply(acc, a[i]));
        }
        Ok(())
    }
    fn all_gather(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(self.meet(data)?.concat())
    }
    fn describe(&self) -> String {
        format!("{} threads (rank {})", self.shared.n, self.rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_mpi_refuses_to_be_one_of_several_ranks() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(without_mpi(env(&[])).is_ok());
        // A world of one, junk, and Slurm's allocation size are not several ranks.
        assert!(without_mpi(env(&[("OMPI_COMM_WORLD_SIZE", "1"), ("PMI_SIZE", "x"), ("SLURM_NTASKS", "4")])).is_ok());
        for (var, pairs) in [
            ("OMPI_COMM_WORLD_SIZE", env(&[("OMPI_COMM_WORLD_SIZE", "2")])),
            ("PMI_SIZE", env(&[("PMI_SIZE", " 8 ")])),
            ("PMIX_SIZE", env(&[("PMIX_SIZE", "3")])),
        ] {
            let e = without_mpi(pairs).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains("--features mpi") && e.contains("ranks"), "{e}");
        }
    }

    #[test]
    fn threads_reduce_and_gather_in_rank_order() {
        let handles: Vec<_> = Threads::world(3)
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let r = c.rank() as f32;
                    let mut s = vec![r, 10.0 * r];
                    c.all_reduce(&mut s, Reduce::Sum).expect("sum");
                    let mut m = vec![r, -r];
                    c.all_reduce(&mut m, Reduce::Max).expect("max");
                    let g = c.all_gather(&[r]).expect("gather");
                    (s, m, g)
                })
            })
            .collect();
        for h in handles {
            let (s, m, g) = h.join().expect("rank thread");
            assert_eq!(s, vec![3.0, 30.0]);
            assert_eq!(m, vec![2.0, 0.0]);
            assert_eq!(g, vec![0.0, 1.0, 2.0]);
        }
    }

    #[test]
    fn solo_is_the_identity() {
        let mut v = vec![1.0, 2.0];
        Solo.all_reduce(&mut v, Reduce::Sum).expect("solo");
        assert_eq!(v, vec![1.0, 2.0]);
        assert_eq!(Solo.all_gather(&v).expect("solo"), v);
    }
}
