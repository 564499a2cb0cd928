//! A prepared dispatch: pipeline + bind group + workgroup counts, built once and recorded as
//! many times as needed (this is the unit the graph executor replays).
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::tensor::Tensor;

pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
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
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
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
            bind_group,
            workgroups,
            _params: Some(params_buf),
            owned: Vec::new(),
        })
    }
}
