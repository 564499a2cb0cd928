//! The CPU interpreter: runs a graph's ops with the f64 references of `ops::*::cpu`, so any
//! model's forward and backward can be compared with the GPU plan end to end, and
//! finite-differenced in f64.
use super::{Graph, Kind, TensorId};
use crate::error::{Error, Result};

pub use super::op::Values;

/// Runs every op (forward and backward). `values` must hold every input, parameter and
/// buffer; constants are added here; batch-norm updates its running statistics in place.
pub fn run(g: &Graph, values: &mut Values) -> Result<()> {
    run_ops(g, values, 0..g.ops.len())
}

/// Runs the forward ops only.
pub fn run_forward(g: &Graph, values: &mut Values) -> Result<()> {
    run_ops(g, values, 0..g.forward_len)
}

fn run_ops(g: &Graph, values: &mut Values, range: std::ops::Range<usize>) -> Result<()> {
    for (t, data) in &g.constants {
        values.insert(*t, data.iter().map(|&x| x as f64).collect());
    }
    for (i, info) in g.tensors.iter().enumerate() {
        if matches!(info.kind, Kind::Input | Kind::Parameter | Kind::Buffer) && !values.contains_key(&TensorId(i)) {
            return Err(Error::Invalid(format!("CPU interpreter: {:?} '{}' has no value", info.kind, info.name)));
        }
    }
    for op in &g.ops[range] {
        super::op::eval(g, op, values)?;
    }
    Ok(())
}
