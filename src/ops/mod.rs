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
use crate::gpu::{DType, Kernel, Tensor};

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

/// How a kernel reads and writes its activations: elements per load (`width`, 1 or 4) and
/// the element type they are stored in (`act`, f32 or f16). Kernels compute in f32 either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub width: usize,
    pub act: DType,
}

impl Layout {
    pub fn new(width: usize, act: DType) -> Layout {
        Layout { width, act }
    }
    /// The layouts a family with a vec4 variant lists: widths 1 and 4, f32 and f16.
    pub fn all() -> Vec<Layout> {
        ACTIVATION_TYPES.iter().flat_map(|&act| [1, 4].map(|w| Layout::new(w, act))).collect()
    }
    /// The name suffix: `w{width}`, then `/f16` for f16 storage (f32 names are unchanged).
    pub fn suffix(&self) -> String {
        format!("w{}{}", self.width, type_suffix(self.act))
    }
}

/// The element types activations may be stored in.
pub(crate) const ACTIVATION_TYPES: [DType; 2] = [DType::F32, DType::F16];

/// `/f16` for a kernel variant over f16 activations, nothing for f32.
pub(crate) fn type_suffix(act: DType) -> &'static str {
    if act == DType::F16 {
        "/f16"
    } else {
        ""
    }
}

/// The WGSL scalar of an activation type.
pub(crate) fn wgsl_scalar(act: DType) -> &'static str {
    if act == DType::F16 {
        "f16"
    } else {
        "f32"
    }
}

/// The placeholders of a kernel with a vec4 variant: `{{V}}` (the type it computes in:
/// vec4<f32> or f32), `{{S}}` (the type its activations are stored in: V with f16 for f16
/// storage; reads convert with `V(..)`, writes with `S(..)`, no-ops for f32), `{{WIDTH}}` and
/// `{{HSUM}}` (the body of `fn hsum(v: V) -> f32`, the sum of a V's components).
pub(crate) fn vec_subs(l: Layout) -> [(&'static str, String); 4] {
    let scalar = wgsl_scalar(l.act);
    let (v, s, hsum) = if l.width == 4 {
        ("vec4<f32>".to_string(), format!("vec4<{scalar}>"), "return dot(v, vec4<f32>(1.0));")
    } else {
        ("f32".to_string(), scalar.to_string(), "return v;")
    };
    [("V", v), ("S", s), ("WIDTH", l.width.to_string()), ("HSUM", hsum.to_string())]
}

/// Concatenates WGSL parts and fills `{{NAME}}` placeholders.
pub(crate) fn compose(parts: &[&str], subs: &[(&str, String)]) -> String {
    let mut s = parts.join("\n");
    for (k, v) in subs {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

/// `compose` for a kernel over `act` activations: f16 modules start with `enable f16;`.
pub(crate) fn compose_typed(act: DType, parts: &[&str], subs: &[(&str, String)]) -> String {
    enable_for(act, compose(parts, subs))
}

/// A complete module over `act` activations: f16 ones start with `enable f16;`.
pub(crate) fn enable_for(act: DType, module: String) -> String {
    if act == DType::F16 {
        format!("enable f16;\n{module}")
    } else {
        module
    }
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

/// A kernel's tensor has `want` f32 elements (weights, statistics, everything that is not an
/// activation).
pub(crate) fn check_len(op: &'static str, what: &str, t: &Tensor, want: usize) -> Result<()> {
    check_typed(op, what, t, want, DType::F32)
}

/// A kernel's tensor has `want` elements of type `dtype` (an activation: the type the
/// kernel variant was chosen for, f32 or f16).
pub(crate) fn check_typed(op: &'static str, what: &str, t: &Tensor, want: usize, dtype: DType) -> Result<()> {
    if t.dtype() != dtype {
        return Err(Error::Shape { op, detail: format!("{what} holds {}, the kernel reads {dtype}", t.dtype()) });
    }
    if t.len() != want {
        return Err(Error::Shape {
            op,
            detail: format!("{what} has {} elements (shape {:?}), expected {want}", t.len(), t.shape()),
        });
    }
    Ok(())
}

/// The activation type of a kernel call, from its first activation tensor: f32 or f16.
pub(crate) fn activation_type(op: &'static str, t: &Tensor) -> Result<DType> {
    match t.dtype() {
        d @ (DType::F32 | DType::F16) => Ok(d),
        d => Err(Error::Shape { op, detail: format!("activations of type {d}: the kernels store f32 or f16") }),
    }
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
