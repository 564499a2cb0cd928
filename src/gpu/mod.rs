//! The GPU side: context (adapter, device, caches), tensors and prepared dispatches.
pub mod context;
pub mod dispatch;
pub mod dtype;
pub mod kernel;
pub mod tensor;
pub mod timing;
pub mod tune;

#[cfg(not(target_arch = "wasm32"))]
pub use context::list_adapters;
pub use context::{describe_adapter, pick_adapter, AdapterClass, Gpu, GpuOptions};
pub use dispatch::{linear_grid, runs, Dispatch, Exchange, Step};
pub use dtype::DType;
pub use kernel::Kernel;
pub use tensor::Tensor;

/// A kernel's typed parameters (a `#[repr(C)]` struct mirroring its WGSL `Params`, all
/// 4-byte fields) as the uniform words `Gpu::dispatch` binds.
pub fn words<P: bytemuck::Pod>(params: &P) -> Vec<u32> {
    bytemuck::cast_slice(bytemuck::bytes_of(params)).to_vec()
}
