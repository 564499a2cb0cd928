//! A prepared dispatch: pipeline + bind group + workgroup counts, built once and recorded as
//! many times as needed (this is the unit the graph executor replays).
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::tensor::Tensor;

pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    /// None on a planning device (never recorded).
    bind_group: Option<wgpu::BindGroup>,
    workgroups: [u32; 3],
    /// Kept alive with the bind group.
    _params: Option<wgpu::Buffer>,
    /// Temporaries (split-K slabs, reduction partials) this dispatch reads or writes: owned
    /// here so the pool cannot hand their buffers to anyone else while the dispatch lives.
    owned: Vec<Tensor>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatch({}, {:?})", self.label, self.workgroups)
    }
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        let Some(bind_group) = &self.bind_group else { return };
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
    pub fn workgroups(&self) -> [u32; 3] {
        self.workgroups
    }
    /// Bytes of the temporaries this dispatch owns.
    pub fn owned_bytes(&self) -> u64 {
        self.owned.iter().map(|t| t.bytes()).sum()
    }
    /// Bytes of the buffers behind those temporaries (pool buckets).
    pub fn owned_capacity(&self) -> u64 {
        self.owned.iter().map(|t| t.capacity()).sum()
    }
    /// Ties a temporary tensor's lifetime to this dispatch.
    pub fn keep(mut self, t: Tensor) -> Self {
        self.owned.push(t);
        self
    }
}

/// Splits a linear workgroup count over x and y so no dimension exceeds the device limit.
/// Shaders rebuild the linear id as `wg.x + wg.y * num_workgroups.x`.
pub fn linear_grid(gpu: &Gpu, label: &str, count: u64) -> Result<[u32; 3]> {
    let max = gpu.limits.max_compute_workgroups_per_dimension as u64;
    let count = count.max(1);
    if count <= max {
        return Ok([count as u32, 1, 1]);
    }
    let y = count.div_ceil(max);
    if y > max {
        return Err(Error::TooManyWorkgroups { kernel: label.to_string(), count, limit: max * max });
    }
    let x = count.div_ceil(y);
    Ok([x as u32, y as u32, 1])
}

impl Gpu {
    /// Binds `params` (a uniform at binding 0, or nothing when empty) and the tensors at
    /// bindings 1.. in order.
    pub fn dispatch(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        params: &[u32],
        tensors: &[&Tensor],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(Error::TooManyWorkgroups {
                kernel: label.to_string(),
                count: workgroups.iter().map(|&w| w as u64).product(),
                limit: max as u64,
            });
        }
        if self.planning {
            let (label, pipeline) = (label.to_string(), pipeline.clone());
            return Ok(Dispatch { label, pipeline, bind_group: None, workgroups, _params: None, owned: Vec::new() });
        }
        let params_buf = self.uniform_buffer(params);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params_buf.as_entire_binding() }];
        for (i, t) in tensors.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: t.binding() });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.counters.bind_groups.fetch_add(1, Ordering::Relaxed);
        Ok(Dispatch {
            label: label.to_string(),
            pipeline: pipeline.clone(),
            bind_group: Some(bind_group),
            workgroups,
            _params: Some(params_buf),
            owned: Vec::new(),
        })
    }
}

/// A point in a plan where the ranks of a data-parallel job combine values: the `src`
/// tensors are read back (one buffer), all-reduced with `reduce`, multiplied by `scale` and
/// written to `dst` (often `src` itself). Only plans built for a world of several ranks have
/// them.
pub struct Exchange {
    pub label: String,
    pub src: Vec<Tensor>,
    pub dst: Vec<Tensor>,
    pub reduce: crate::dist::Reduce,
    pub scale: f32,
}

impl Exchange {
    /// In place over `tensors` (views of them).
    pub fn in_place(label: &str, tensors: &[&Tensor], reduce: crate::dist::Reduce, scale: f32) -> Result<Exchange> {
        let views = |ts: &[&Tensor]| ts.iter().map(|t| t.view(t.shape())).collect::<Result<Vec<_>>>();
        Ok(Exchange { label: label.into(), src: views(tensors)?, dst: views(tensors)?, reduce, scale })
    }

    pub fn bytes(&self) -> u64 {
        self.src.iter().map(|t| t.bytes()).sum()
    }
}

/// One step of a plan: a dispatch, or an exchange between the ranks.
pub enum Step {
    Run(Dispatch),
    Exchange(Exchange),
}

/// Wraps dispatches as steps.
pub fn runs(d: Vec<Dispatch>) -> Vec<Step> {
    d.into_iter().map(Step::Run).collect()
}

/// The time one exchange took: reading its tensors back (waiting for the GPU's work before
/// it included) and the all-reduce (waiting for the other ranks included).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExchangeTime {
    pub readback: f64,
    pub reduce: f64,
}

#[cfg(not(target_arch = "wasm32"))]
impl Gpu {
    /// Runs `steps` in order: dispatches are submitted in segments, each exchange waits for
    /// the segment before it, all-reduces with the other ranks and writes the result back.
    pub fn run_steps(&self, steps: &[Step], collective: &dyn crate::dist::Collective) -> Result<()> {
        let mut segment: Vec<&Dispatch> = Vec::new();
        for s in steps {
            match s {
                Step::Run(d) => segment.push(d),
                Step::Exchange(x) => {
                    self.run_all(segment.drain(..));
                    self.exchange(x, collective)?;
                }
            }
        }
        self.run_all(segment);
        Ok(())
    }

    /// One exchange (see `Exchange`).
    pub fn exchange(&self, x: &Exchange, collective: &dyn crate::dist::Collective) -> Result<ExchangeTime> {
        let start = std::time::Instant::now();
        let src: Vec<&Tensor> = x.src.iter().collect();
        let mut data = pollster::block_on(self.read_many(&src))?;
        let readback = start.elapsed().as_secs_f64();
        collective
            .all_reduce(&mut data, x.reduce)
            .map_err(|e| Error::Invalid(format!("exchange '{}' failed: {e}", x.label)))?;
        let reduce = start.elapsed().as_secs_f64() - readback;
        if x.scale != 1.0 {
            data.iter_mut().for_each(|v| *v *= x.scale);
        }
        let mut offset = 0;
        for t in &x.dst {
            self.write(t, &data[offset..offset + t.len()])?;
            offset += t.len();
        }
        Ok(ExchangeTime { readback, reduce })
    }
}
