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
}

/// Every kernel of one family's `Kernel` type, composed.
pub(crate) fn sources<K: Kernel>() -> Vec<KernelSource> {
    K::all().iter().map(|k| KernelSource { name: k.name(), source: k.source() }).collect()
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

/// Each typed parameter struct has the size of the WGSL struct it mirrors in a kernel that
/// binds it (a missing or extra field shifts every later one).
#[cfg(test)]
mod param_layouts {
    use std::mem::size_of;

    fn wgsl_size(kernel: &str, struct_name: &str) -> usize {
        let all = super::all_kernel_sources();
        let k = all.iter().find(|k| k.name == kernel).unwrap_or_else(|| panic!("no kernel {kernel}"));
        let module = naga::front::wgsl::parse_str(&k.source).unwrap_or_else(|e| panic!("{kernel}: {e}"));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("layout");
        let (ty, _) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(struct_name))
            .unwrap_or_else(|| panic!("{kernel} has no struct {struct_name}"));
        layouter[ty].size as usize
    }

    #[test]
    fn typed_params_match_their_wgsl_structs() {
        use super::batchnorm::BatchNormKernel;
        use super::conv::{rows::DirectKernel, ConvGemmKernel, Loader};
        use super::elementwise::{ElementwiseKernel, Map};
        use super::matmul::{GemmVariant, MatmulKernel};
        use super::sinkhorn::{Pass, SinkhornKernel};
        use super::{loss::LossKernel, optim::OptimKernel, pool::PoolKernel, reduce::ReduceKernel, rows::RowsKernel};
        use crate::gpu::Kernel;
        let tiled = GemmVariant::RegisterTiled { tm: 8, tn: 8 };
        let cases: [(String, &str, usize); 17] = [
            (
                ConvGemmKernel { loader: Loader::Forward, variant: tiled }.name(),
                "Params",
                size_of::<super::conv::ConvParams>(),
            ),
            (
                DirectKernel::Rows { tm: 8, tn: 8, sg: 8, kw: 3 }.name(),
                "Params",
                size_of::<super::conv::rows::RowsParams>(),
            ),
            (
                DirectKernel::WeightRows { tm: 8, tp: 8, sg: 8, kh: 3, kw: 3 }.name(),
                "Params",
                size_of::<super::conv::rows::WeightRowsParams>(),
            ),
            (
                MatmulKernel::Dense { variant: tiled, trans_a: false, trans_b: false }.name(),
                "Params",
                size_of::<super::matmul::DenseParams>(),
            ),
            (BatchNormKernel::Apply(1).name(), "Params", size_of::<super::batchnorm::BatchNormParams>()),
            (RowsKernel::SoftmaxForward.name(), "Params", size_of::<super::rows::RowParams>()),
            (LossKernel::CrossEntropyForward.name(), "Params", size_of::<super::rows::RowParams>()),
            (ElementwiseKernel::Map(Map::Add, 1).name(), "Params", size_of::<super::elementwise::ElementwiseParams>()),
            (ElementwiseKernel::Copy.name(), "CopyParams", size_of::<super::elementwise::CopyParams>()),
            (ReduceKernel::Axis.name(), "Params", size_of::<super::reduce::AxisParams>()),
            (ReduceKernel::AxisShort.name(), "Params", size_of::<super::reduce::ShortParams>()),
            (ReduceKernel::AxisBackward.name(), "Params", size_of::<super::reduce::BackwardParams>()),
            (PoolKernel::MaxForward.name(), "Params", size_of::<super::pool::PoolParams>()),
            (OptimKernel::SgdStep.name(), "Params", size_of::<super::optim::SgdParams>()),
            (OptimKernel::AdamStep.name(), "Params", size_of::<super::optim::AdamParams>()),
            (SinkhornKernel::Pass(Pass::Rowsum, 1).name(), "Params", size_of::<super::sinkhorn::SinkhornParams>()),
            (SinkhornKernel::Targets.name(), "Params", size_of::<super::sinkhorn::TargetsParams>()),
        ];
        for (kernel, name, rust) in cases {
            assert_eq!(wgsl_size(&kernel, name), rust, "{kernel}: {name}");
        }
    }
}
