//! Every kernel, forward and backward, against its f64 CPU reference on several shapes
//! (ragged ones included), with NaN-prefilled outputs; every backward rule against finite
//! differences. One test binary for all op families (one wgpu link, one shared device).
#[path = "../common/mod.rs"]
mod common;

mod batchnorm;
mod conv;
mod elementwise;
mod limits;
mod loss;
mod matmul;
mod pool;
mod reduce;
mod rows;
