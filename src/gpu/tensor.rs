//! A GPU tensor: f32 elements in a pooled storage buffer, with a shape. Dropping it returns the
//! buffer to the pool.
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::context::{Gpu, Pool};

pub struct Tensor {
    buffer: Option<wgpu::Buffer>,
    shape: Vec<usize>,
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
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * 4
    }
    /// Another tensor over the first `shape`-many elements of the same buffer (the graph
    /// executor's memory plan places several tensors in one buffer over time).
    pub fn view(&self, shape: &[usize]) -> Result<Tensor> {
        let elems: usize = shape.iter().product();
        let capacity = (self.buffer().size() / 4) as usize;
        if elems == 0 || elems > capacity {
            return Err(Error::Invalid(format!(
                "view of shape {shape:?} does not fit a buffer of {capacity} elements"
            )));
        }
        Ok(Tensor { buffer: self.buffer.clone(), shape: shape.to_vec(), pool: None })
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("tensor buffer is present until drop")
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
        write!(f, "Tensor{:?}", self.shape)
    }
}

impl Gpu {
    /// An uninitialised tensor (contents are whatever the pooled buffer held). Fails with a
    /// clear error when the tensor is larger than one storage binding may be.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let elems: usize = shape.iter().product();
        if elems == 0 {
            return Err(Error::Invalid(format!("tensor '{name}' has shape {shape:?} with no elements")));
        }
        let bytes = elems as u64 * 4;
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(Error::TensorTooLarge { name: name.to_string(), bytes, limit });
        }
        Ok(Tensor {
            buffer: Some(self.storage_buffer(bytes, self.limits.max_buffer_size)),
            shape: shape.to_vec(),
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
        self.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    pub fn tensor_filled(&self, name: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        self.tensor_from(name, shape, &vec![value; n])
    }

    /// Overwrites a tensor's contents from the CPU.
    pub fn write(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        if data.len() != t.len() {
            return Err(Error::Shape {
                op: "write",
                detail: format!("tensor {:?} holds {} values, got {}", t.shape(), t.len(), data.len()),
            });
        }
        self.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        Ok(())
    }
}
