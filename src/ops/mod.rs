//! The op library. One folder per op family: its WGSL lives in `shaders/<family>/`, its CPU
//! reference (f64, plain loops) in `cpu.rs`, the GPU dispatch and backward rule in `mod.rs`,
//! and its tests in `tests/<family>.rs`.
/// An op's tensors as one struct, generic over the handle: `TensorId` in the graph's `Op`,
/// `&Tensor` in the GPU call; `map` turns one into the other (the plan's lookup).
macro_rules! op_tensors {
    ($(#[$m:meta])* $name:ident { $($field:ident),* $(,)? } $(optional { $($opt:ident),* $(,)? })?) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<T> {
            $(pub $field: T,)*
            $($(pub $opt: Option<T>,)*)?
        }
        impl<T: Copy> $name<T> {
            pub fn map<U, E>(&self, mut f: impl FnMut(T) -> std::result::Result<U, E>) -> std::result::Result<$name<U>, E> {
                Ok($name { $($field: f(self.$field)?,)* $($($opt: self.$opt.map(&mut f).transpose()?,)*)? })
            }
        }
    };
}

pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rows;
pub mod rules;
pub mod sinkhorn;

use crate::error::{Error, Result};
use crate::gpu::{Kernel, Tensor};

/// A complete WGSL module as handed to the device, for validation and inspection.
pub struct KernelSource {
    pub name: String,
    pub source: String,
    /// Its parameters' WGSL struct and the size of the Rust struct that fills it.
    pub params: Option<(&'static str, usize)>,
}

/// Every kernel of one family's `Kernel` type, composed.
pub(crate) fn sources<K: Kernel>() -> Vec<KernelSource> {
    K::all().iter().map(|k| KernelSource { name: k.name(), source: k.source(), params: k.params() }).collect()
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

/// A kernel's tensor has `want` elements of the type its kernels are written for (f32: every
/// kernel today).
pub(crate) fn check_len(op: &'static str, what: &str, t: &Tensor, want: usize) -> Result<()> {
    if t.dtype() != crate::gpu::DType::F32 {
        return Err(Error::Shape { op, detail: format!("{what} holds {}, the kernels read f32", t.dtype()) });
    }
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

/// Each kernel's typed parameter struct has the size of the WGSL struct it fills (a missing
/// or extra field shifts every later one): every kernel of every family, as each declares.
#[cfg(test)]
mod param_layouts {
    fn wgsl_size(k: &super::KernelSource, struct_name: &str) -> usize {
        let module = naga::front::wgsl::parse_str(&k.source).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("layout");
        let (ty, _) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(struct_name))
            .unwrap_or_else(|| panic!("{} has no struct {struct_name}", k.name));
        layouter[ty].size as usize
    }

    #[test]
    fn typed_params_match_their_wgsl_structs() {
        let all = super::all_kernel_sources();
        let mut checked = 0;
        for k in &all {
            let (name, rust) = k.params.unwrap_or_else(|| panic!("{} declares no params", k.name));
            assert_eq!(wgsl_size(k, name), rust, "{}: {name}", k.name);
            checked += 1;
        }
        assert_eq!(checked, all.len());
        assert!(checked > 100, "only {checked} kernels");
    }
}
