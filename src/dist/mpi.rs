//! The MPI world (rsmpi over OpenMPI or MPICH). Every collective is a non-blocking MPI call
//! polled against a deadline, so a rank whose peer died or hangs stops the whole job with a
//! message (MPI_Abort) instead of waiting for ever.
use std::sync::Mutex;
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use super::{comm_timeout, Collective, Reduce};
use crate::error::{Error, Result};

/// Whether this process was started by an MPI launcher (mpirun / mpiexec / srun) with
/// more than one rank, or `SWAV_WGPU_MPI=1` asks for MPI anyway.
pub fn launched_by_mpi() -> bool {
    if std::env::var("SWAV_WGPU_MPI").is_ok_and(|v| v == "1") {
        return true;
    }
    // Slurm's and MPICH's extra variables too: with MPI built in, a false start is harmless
    // (MPI makes a world of one).
    super::launched_ranks(|k| std::env::var(k).ok()).is_some()
        || ["MPI_LOCALNRANKS", "SLURM_NTASKS"]
            .iter()
            .any(|k| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok()).is_some_and(|n| n > 1))
}

pub struct MpiWorld {
    /// MPI is initialised with `Threading::Serialized`: calls may come from any thread but
    /// never two at once, which this lock guarantees.
    comm: Mutex<Comms>,
    rank: usize,
    world: usize,
    local_rank: usize,
    _universe: mpi::environment::Universe,
}

struct Comms {
    world: SimpleCommunicator,
}

// SAFETY: the communicator handles are only used under the mutex, one call at a time, and
// MPI was initialised for serialized use from any thread.
unsafe impl Send for Comms {}

impl MpiWorld {
    pub fn init() -> Result<MpiWorld> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| Error::Invalid("MPI is already initialised in this process".into()))?;
        if threading < mpi::Threading::Serialized {
            return Err(Error::Invalid(format!(
                "this MPI offers only {threading:?} threading; swav-wgpu needs Serialized"
            )));
        }
        let world = universe.world();
        let rank = world.rank() as usize;
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Ok(MpiWorld {
            rank,
            world: world.size() as usize,
            local_rank,
            comm: Mutex::new(Comms { world }),
            _universe: universe,
        })
    }

    fn comm(&self) -> Result<std::sync::MutexGuard<'_, Comms>> {
        self.comm.lock().map_err(|_| Error::Invalid("a thread panicked in an MPI call".into()))
    }

    /// Polls `request` until it completes; past the deadline, stops every rank.
    fn finish<'a, D: ?Sized, S: mpi::request::Scope<'a>>(
        &self,
        comm: &Comms,
        mut request: mpi::request::Request<'a, D, S>,
    ) {
        let deadline = Instant::now() + comm_timeout();
        let mut spins = 0u32;
        loop {
            match request.test() {
                Ok(_) => return,
                Err(r) => request = r,
            }
            if Instant::now() > deadline {
                eprintln!("error: {}", super::timed_out(self.rank));
                comm.world.abort(3);
            }
            spins += 1;
            if spins > 1000 {
                std::thread::sleep(std::time::Duration::from_micros(50));
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world(&self) -> usize {
        self.world
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn all_reduce(&self, data: &mut [f32], op: Reduce) -> Result<()> {
        let comm = self.comm()?;
        let send = data.to_vec();
        let op = match op {
            Reduce::Sum => SystemOperation::sum(),
            Reduce::Max => SystemOperation::max(),
        };
        mpi::request::scope(|scope| {
            let r = comm.world.immediate_all_reduce_into(scope, &send[..], data, op);
            self.finish(&comm, r);
        });
        Ok(())
    }
    fn all_gather(&self, data: &[f32]) -> Result<Vec<f32>> {
        let comm = self.comm()?;
        let mut out = vec![0.0f32; data.len() * self.world];
        mpi::request::scope(|scope| {
            let r = comm.world.immediate_all_gather_into(scope, data, &mut out[..]);
            self.finish(&comm, r);
        });
        Ok(out)
    }
    fn abort(&self, code: i32) {
        // Taking the lock could wait on a call in progress: abort through a fresh handle.
        mpi::topology::SimpleCommunicator::world().abort(code);
    }
    fn describe(&self) -> String {
        format!("MPI world of {} (rank {}, local rank {})", self.world, self.rank, self.local_rank)
    }
}
