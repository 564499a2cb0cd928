//! GPU time of dispatches from timestamp queries written at compute-pass boundaries (the
//! WebGPU `timestamp-query` feature; timestamps inside a pass are native-only and not used).
//! Where the adapter has no timestamps, callers fall back to queue-synchronised wall time.
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu};

/// wgpu caps a query set at 4096 queries: 2048 passes, two timestamps each.
const PASSES_PER_SET: usize = 2048;

impl Gpu {
    /// Whether `gpu_times` can answer (the device was opened with TIMESTAMP_QUERY).
    pub fn has_timestamps(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Seconds of GPU time each group of dispatches takes, each group recorded as its own
    /// compute pass between two timestamps, all groups in one submission. `None` without
    /// timestamps or on wasm (no synchronous wait there).
    pub fn gpu_times(&self, groups: &[&[Dispatch]]) -> Result<Option<Vec<f64>>> {
        if !self.has_timestamps() || cfg!(target_arch = "wasm32") {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(groups.len());
        for chunk in groups.chunks(PASSES_PER_SET) {
            out.extend(self.gpu_times_chunk(chunk)?);
        }
        Ok(Some(out))
    }

    fn gpu_times_chunk(&self, groups: &[&[Dispatch]]) -> Result<Vec<f64>> {
        let queries = 2 * groups.len() as u32;
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: queries,
        });
        let bytes = 8 * queries as u64;
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timed") });
        for (i, group) in groups.iter().enumerate() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            for d in group.iter() {
                d.record(&mut pass);
            }
        }
        encoder.resolve_query_set(&set, 0..queries, &resolve, 0);
        encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let ticks = self.map_u64s(&readback)?;
        let period_ns = self.queue.get_timestamp_period() as f64;
        // A driver may report an end before its begin across a clock hiccup: clamp at zero.
        Ok(ticks.chunks(2).map(|p| p[1].saturating_sub(p[0]) as f64 * period_ns * 1e-9).collect())
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn map_u64s(&self, buffer: &wgpu::Buffer) -> Result<Vec<u64>> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|_| Error::Readback("timestamp map callback dropped".into()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        let ticks = {
            let view = buffer.get_mapped_range(..).map_err(|e| Error::Readback(e.to_string()))?;
            bytemuck::cast_slice::<u8, u64>(&view).to_vec()
        };
        buffer.unmap();
        Ok(ticks)
    }

    #[cfg(target_arch = "wasm32")]
    fn map_u64s(&self, _: &wgpu::Buffer) -> Result<Vec<u64>> {
        Err(Error::Readback("synchronous timestamp readback is native-only".into()))
    }

    /// Seconds each group takes: GPU timestamps where the device has them, else each group
    /// run alone and waited for (queue-synchronised wall time). Also says which it was.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn times(&self, groups: &[&[Dispatch]]) -> Result<(Vec<f64>, bool)> {
        if let Some(t) = self.gpu_times(groups)? {
            return Ok((t, true));
        }
        let wall = groups
            .iter()
            .map(|d| {
                let t = std::time::Instant::now();
                self.run(d);
                self.wait_idle();
                t.elapsed().as_secs_f64()
            })
            .collect();
        Ok((wall, false))
    }

    /// Seconds `dispatches` take as one pass: the median of `reps` timed runs (`times`) after
    /// a warm-up. Returns (seconds, whether timestamps measured it).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn time_dispatches(&self, dispatches: &[Dispatch], reps: usize) -> Result<(f64, bool)> {
        self.run(dispatches);
        self.wait_idle();
        let (t, by_timestamps) = self.times(&vec![dispatches; reps.max(1)])?;
        Ok((median(t), by_timestamps))
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
