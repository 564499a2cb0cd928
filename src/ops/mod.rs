//! The op library. One folder per op family: its WGSL lives in `shaders/<family>/`, its CPU
//! reference (f64, plain loops) in `cpu.rs`, the GPU dispatch and backward rule in `mod.rs`,
//! and its tests in `tests/<family>.rs`.
pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rows;
pub mod sinkhorn;

use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// A complete WGSL module as handed to the device, for validation and inspection.
pub struct KernelSource {
    pub name: String,
    pub source: String,
}

/// Elements per load for kernels with a vec4 variant: 4 when `n` (the run of elements that
/// must not be split across a vec4) is a multiple of 4, else 1.
pub(crate) fn vec_width(n: usize) -> usize {
    if n.is_multiple_of(4) {
        4
    } else {
        1
    }
}

/// The placeholders of a kernel with a vec4 variant: `{{V}}` (vec4<f32> or f32), `{{WIDTH}}`
/// and `{{HSUM}}` (the body of `fn hsum(v: V) -> f32`, the sum of a V's components).
pub(crate) fn vec_subs(width: usize) -> [(&'static str, String); 3] {
    let (v, hsum) = if width == 4 { ("vec4<f32>", "return dot(v, vec4<f32>(1.0));") } else { ("f32", "return v;") };
    [("V", v.to_string()), ("WIDTH", width.to_string()), ("HSUM", hsum.to_string())]
}

/// Concatenates WGSL parts and fills `{{NAME}}` placeholders.
pub(crate) fn compose(parts: &[&str], subs: &[(&str, String)]) -> String {
    let mut s = parts.join("\n");
    for (k, v) in subs {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

/// Every kernel in every variant and specialisation the library can create, fully composed.
pub fn all_kernel_sources() -> Vec<KernelSource> {
    let mut v = Vec::new();
    v.extend(matmul::kernel_sources());
    v.extend(conv::kernel_sources());
    v.extend(batchnorm::kernel_sources());
    v.extend(elementwise::kernel_sources());
    v.extend(pool::kernel_sources());
    v.extend(rows::kernel_sources());
    v.extend(reduce::kernel_sources());
    v.extend(loss::kernel_sources());
    v.extend(sinkhorn::kernel_sources());
    v.extend(optim::kernel_sources());
    v
}

pub(crate) fn check_len(op: &'static str, what: &str, t: &Tensor, want: usize) -> Result<()> {
    if t.len() != want {
        return Err(Error::Shape {
            op,
            detail: format!("{what} has {} elements (shape {:?}), expected {want}", t.len(), t.shape()),
        });
    }
    Ok(())
}

pub(crate) fn to_u32(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Shape { op, detail: format!("dimension {v} does not fit in 32 bits") })
}
