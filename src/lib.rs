//! swav-wgpu: SwAV self-supervised learning with every numeric step in WGSL compute shaders,
//! over wgpu (Vulkan, Metal, DX12, and WebGPU in the browser).
//!
//! Layers, each using only those before it: `gpu` (adapter, device, pipeline cache, buffers,
//! timestamps, tuner), `ops` (one folder per op family: the GPU call and the f64 CPU
//! reference; WGSL in `shaders/<family>/`), `graph` (ops recorded, differentiated, planned;
//! every op's rules in `graph/op.rs`), `model` / `swav` / `optim`, `train`, then `run`,
//! `bench` and `web`; `dist` (the ranks of a data-parallel job) is a leaf any layer may use.
// On wasm the WebGPU handles are neither Send nor Sync (one thread); the Arcs are still right.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod data;
pub mod dist;
pub mod error;
pub mod eval;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod model;
pub mod ops;
pub mod optim;
pub mod rng;
// The browser demo runs the kernel checks, so wasm builds always have the helpers.
#[cfg(not(target_arch = "wasm32"))]
pub mod run;
pub mod swav;
#[cfg(any(feature = "testing", target_arch = "wasm32"))]
pub mod testing;
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
