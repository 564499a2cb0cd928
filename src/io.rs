//! Reading and writing tensors as safetensors (f32 in memory; f64, f32 and i64 files read).
use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// A named tensor read from a file: shape and values as f32.
#[derive(Clone, Debug)]
pub struct NamedTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every tensor of a safetensors file, converted to f32, by name.
pub fn load_safetensors(path: &Path) -> Result<BTreeMap<String, NamedTensor>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    parse_safetensors(&bytes).map_err(|e| Error::Invalid(format!("'{}': {e}", path.display())))
}

pub fn parse_safetensors(bytes: &[u8]) -> Result<BTreeMap<String, NamedTensor>> {
    use safetensors::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::Invalid(format!("not a valid safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => {
                return Err(Error::Invalid(format!(
                    "tensor '{name}' has unsupported dtype {other:?}"
                )))
            }
        };
        out.insert(
            name,
            NamedTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Same, keeping f64 precision (for reference fixtures).
/// Shape and f64 values by name.
pub type F64Tensors = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

pub fn load_safetensors_f64(path: &Path) -> Result<F64Tensors> {
    use safetensors::Dtype;
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "'{}' is not a valid safetensors file: {e}",
            path.display()
        ))
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                .collect(),
            other => {
                return Err(Error::Invalid(format!(
                    "tensor '{name}' has unsupported dtype {other:?}"
                )))
            }
        };
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}
