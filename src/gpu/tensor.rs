//! A GPU tensor: elements of one `DType` in a pooled storage buffer, with a shape. Dropping it
//! returns the buffer to the pool.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::context::{Gpu, Pool};
use crate::gpu::DType;

pub struct Tensor {
    /// None for a planning device's tensors (sizes only) and after drop.
    buffer: Option<wgpu::Buffer>,
    /// Bytes of the buffer behind it (the pool rounds sizes up to its buckets).
    capacity: u64,
    shape: Vec<usize>,
    dtype: DType,
    /// Where the buffer goes back on drop; `None` for views, which do not own their buffer.
    pool: Option<Pool>,
}

impl Tensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn bytes(&self) -> u64 {
        self.dtype.bytes(self.len())
    }
    /// Another tensor over the first `shape`-many elements of the same buffer (the graph
    /// executor's memory plan places several tensors in one buffer over time).
    pub fn view(&self, shape: &[usize]) -> Result<Tensor> {
        self.view_as(shape, self.dtype)
    }

    /// `view` with another element type (a memory-plan slot holds tensors of any type).
    pub fn view_as(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let elems: usize = shape.iter().product();
        if elems == 0 || dtype.bytes(elems) > self.capacity {
            return Err(Error::Invalid(format!(
                "view of shape {shape:?} {dtype} does not fit a buffer of {} bytes",
                self.capacity
            )));
        }
        Ok(Tensor { buffer: self.buffer.clone(), capacity: self.capacity, shape: shape.to_vec(), dtype, pool: None })
    }

    /// Bytes of the buffer behind this tensor (at least `bytes()`; a view shares its buffer's).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("a tensor has its buffer until drop (a planning device's tensors are never bound)")
    }
    /// The binding covering exactly this tensor's elements (the pooled buffer may be larger).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: 0,
            size: std::num::NonZeroU64::new(self.bytes()),
        })
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        if let (Some(b), Some(pool)) = (self.buffer.take(), &self.pool) {
            let size = b.size();
            if let Ok(mut pool) = pool.lock() {
                pool.entry(size).or_default().push(b);
            }
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?} {}", self.shape, self.dtype)
    }
}

impl Gpu {
    /// An uninitialised f32 tensor (contents are whatever the pooled buffer held). Fails with a
    /// clear error when the tensor is larger than one storage binding may be.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.tensor_of(name, shape, DType::F32)
    }

    /// `tensor` of any element type.
    pub fn tensor_of(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.sized_tensor(name, shape, dtype, false)
    }

    /// A tensor in a buffer of exactly its bytes (rounded up to 256), not a pool bucket: for
    /// a plan's activation slots, which live as long as the plan, so a bucket's slack (up to
    /// 12.5 %, over a GiB on the paper's workload) would be memory held for nothing.
    pub fn tensor_exact(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.sized_tensor(name, shape, dtype, true)
    }

    fn sized_tensor(&self, name: &str, shape: &[usize], dtype: DType, exact: bool) -> Result<Tensor> {
        let elems: usize = shape.iter().product();
        if elems == 0 {
            return Err(Error::Invalid(format!("tensor '{name}' has shape {shape:?} with no elements")));
        }
        let bytes = dtype.bytes(elems);
        let limit = self.max_binding_bytes();
        if self.planning {
            // Sizes only: what the buffer would take, the binding limit left to the report.
            let capacity = if exact { exact_size(bytes) } else { self.buffer_size(bytes) };
            return Ok(Tensor { buffer: None, capacity, shape: shape.to_vec(), dtype, pool: None });
        }
        if bytes > limit {
            return Err(Error::TensorTooLarge { name: name.to_string(), bytes, limit });
        }
        let buffer = if exact { self.new_storage_buffer(exact_size(bytes)) } else { self.storage_buffer(bytes) };
        Ok(Tensor {
            capacity: buffer.size(),
            buffer: Some(buffer),
            shape: shape.to_vec(),
            dtype,
            pool: Some(Arc::clone(&self.pool)),
        })
    }

    pub fn tensor_from(&self, name: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let elems: usize = shape.iter().product();
        if elems != data.len() {
            return Err(Error::Shape {
                op: "tensor_from",
                detail: format!("'{name}': shape {shape:?} needs {elems} values, got {}", data.len()),
            });
        }
        let t = self.tensor(name, shape)?;
        if !self.planning {
            self.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    pub fn tensor_filled(&self, name: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        self.tensor_from(name, shape, &vec![value; n])
    }

    /// Overwrites an f32 tensor's contents from the CPU.
    pub fn write(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        f32_only("write", t)?;
        if data.len() != t.len() {
            return Err(Error::Shape {
                op: "write",
                detail: format!("tensor {:?} holds {} values, got {}", t.shape(), t.len(), data.len()),
            });
        }
        if !self.planning {
            self.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Copies a tensor back to the CPU. Awaits the map on wasm, polls on native.
    pub async fn read(&self, t: &Tensor) -> Result<Vec<f32>> {
        self.read_many(&[t]).await
    }

    /// Copies several tensors back with one map, one after another in one vector.
    pub async fn read_many(&self, ts: &[&Tensor]) -> Result<Vec<f32>> {
        for t in ts {
            f32_only("read", t)?;
        }
        let bytes: u64 = ts.iter().map(|t| t.bytes()).sum();
        let cached = self.staging.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&bytes).and_then(|v| v.pop());
        let staging = match cached {
            Some(b) => b,
            None => {
                self.counters.buffers.fetch_add(1, Ordering::Relaxed);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read") });
        let mut offset = 0;
        for t in ts {
            encoder.copy_buffer_to_buffer(t.buffer(), 0, &staging, offset, t.bytes());
            offset += t.bytes();
        }
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Readback(e.to_string()))?;
        rx.await
            .map_err(|_| Error::Readback("map callback dropped".into()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        let out = {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Readback(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        self.staging.lock().unwrap_or_else(|e| e.into_inner()).entry(bytes).or_default().push(staging);
        Ok(out)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_blocking(&self, t: &Tensor) -> Result<Vec<f32>> {
        pollster::block_on(self.read(t))
    }
}

/// The CPU side reads and writes f32 values: other element types are an error, not a
/// reinterpretation.
fn f32_only(what: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype != DType::F32 {
        return Err(Error::Shape { op: what, detail: format!("tensor {:?} holds {}, not f32", t.shape(), t.dtype) });
    }
    Ok(())
}

/// The buffer size of an exact tensor: its bytes rounded up to 256 (a binding's offset and size
/// alignment everywhere).
fn exact_size(bytes: u64) -> u64 {
    bytes.max(4).div_ceil(256) * 256
}
