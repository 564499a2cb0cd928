//! The GPU side: context (adapter, device, caches), tensors and prepared dispatches.
pub mod context;
pub mod dispatch;
pub mod tensor;
pub mod timing;
pub mod tune;

#[cfg(not(target_arch = "wasm32"))]
pub use context::list_adapters;
pub use context::{describe_adapter, pick_adapter, AdapterClass, Gpu, GpuOptions};
pub use dispatch::{linear_grid, Dispatch};
pub use tensor::Tensor;

/// f32 bits for a uniform word.
pub fn f(x: f32) -> u32 {
    x.to_bits()
}
