//! A kernel's identity, typed. Each op family lists its kernels as one type implementing
//! `Kernel` (an enum of its kernels and their specialisations): the runtime compiles a kernel
//! through it, and the shader test validates `all()` of it, so the two lists are one.
use super::{Dispatch, Gpu, Tensor};
use crate::error::Result;

pub trait Kernel: Sized {
    /// Every kernel and specialisation of the family the library can create.
    fn all() -> Vec<Self>;
    /// The identity: `<family>/<kernel>[/<specialisation>]` (pipeline cache key and label).
    fn name(&self) -> String;
    /// The complete WGSL module.
    fn source(&self) -> String;
    /// The WGSL struct of its parameters (the uniform at binding 0) and the size of the
    /// `#[repr(C)]` Rust struct that fills it; `tests` check the two agree, kernel by kernel.
    fn params(&self) -> Option<(&'static str, usize)>;

    /// The compiled pipeline (cached by `name`).
    fn pipeline(&self, gpu: &Gpu) -> Result<wgpu::ComputePipeline> {
        gpu.pipeline(&self.name(), || self.source(), "main")
    }

    /// One dispatch of this kernel over `grid` workgroups.
    fn dispatch(&self, gpu: &Gpu, params: &[u32], tensors: &[&Tensor], grid: [u32; 3]) -> Result<Dispatch> {
        gpu.dispatch(&self.name(), &self.pipeline(gpu)?, params, tensors, grid)
    }
}
