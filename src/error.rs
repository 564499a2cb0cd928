//! One error type for the library: every failure a user can cause gets a message that names
//! the thing (adapter, tensor, shape, file) instead of a wgpu panic.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("no WebGPU adapter found{0}. On a machine without a GPU install a software Vulkan driver: `apt-get install -y mesa-vulkan-drivers libvulkan1`")]
    NoAdapter(String),
    #[error("could not open a device on adapter '{adapter}': {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error("tensor '{name}' needs {bytes} bytes, more than this device allows in one storage binding ({limit} bytes, max_storage_buffer_binding_size); use a smaller batch or `--full-limits` on a native GPU")]
    TensorTooLarge { name: String, bytes: u64, limit: u64 },
    #[error("shape error in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("dispatch of '{kernel}' needs {count} workgroups, more than the device allows ({limit})")]
    TooManyWorkgroups { kernel: String, count: u64, limit: u64 },
    #[error("reading a buffer back from the GPU failed: {0}")]
    Readback(String),
    #[error("GPU validation error in {context}: {message}")]
    Validation { context: String, message: String },
    #[error("the GPU device was lost ({0}): the driver reset, the GPU went away, or the browser reclaimed it; the last checkpoint is intact, continue with --resume")]
    DeviceLost(String),
    #[error("the GPU rejected a command during {context} ({message}): a bug in swav-wgpu or the driver, please report it; the step's results were discarded and the last checkpoint is intact, continue with --resume")]
    DeviceError { context: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a shape error.
pub(crate) fn shape_err<T>(op: &'static str, detail: impl Into<String>) -> Result<T> {
    Err(Error::Shape { op, detail: detail.into() })
}
