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
    let bytes = std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    parse_safetensors(&bytes).map_err(|e| Error::Invalid(format!("'{}': {e}", path.display())))
}

/// The metadata key of the tensors' checksum in files this crate writes.
pub const CHECKSUM_KEY: &str = "checksum";

/// FNV-1a (64 bit) over every tensor's name, dtype, shape and bytes in name order: a flipped
/// byte anywhere in the tensors changes it.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, String, &'a [usize], &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = crate::rng::Fnv::new();
    for (name, dtype, shape, data) in sorted {
        h.eat(name.as_bytes());
        h.eat(dtype.as_bytes());
        for d in shape {
            h.eat(&(*d as u64).to_le_bytes());
        }
        h.eat(data);
    }
    format!("fnv1a64:{:016x}", h.finish())
}

/// The metadata key of the checksum over every other metadata entry (the tensors' checksum
/// among them, so it covers the whole file). Files written before it have none.
pub const METADATA_CHECKSUM_KEY: &str = "metadata_checksum";

/// FNV-1a (64 bit) over every metadata key and value but its own, in key order.
fn metadata_checksum(meta: &std::collections::HashMap<String, String>) -> String {
    let mut entries: Vec<_> = meta.iter().filter(|(k, _)| k.as_str() != METADATA_CHECKSUM_KEY).collect();
    entries.sort();
    let mut h = crate::rng::Fnv::new();
    for (k, v) in entries {
        h.eat(k.as_bytes());
        h.eat(&[0]);
        h.eat(v.as_bytes());
        h.eat(&[0]);
    }
    format!("fnv1a64:{:016x}", h.finish())
}

/// Checks the metadata against its checksum, when it has one (files from PyTorch and from
/// before the metadata checksum have none).
fn verify_metadata(meta: &std::collections::HashMap<String, String>) -> Result<()> {
    let Some(want) = meta.get(METADATA_CHECKSUM_KEY) else { return Ok(()) };
    let got = metadata_checksum(meta);
    if &got != want {
        return Err(Error::Invalid(format!(
            "its metadata does not match its checksum ({got}, recorded {want}): the file is damaged or was edited; use an earlier copy"
        )));
    }
    Ok(())
}

/// Checks the metadata and the tensors against the file's checksums, when it has them
/// (files from PyTorch have none).
fn verify(st: &safetensors::SafeTensors, bytes: &[u8]) -> Result<()> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::Invalid(format!("not a valid safetensors file: {e}")))?;
    if let Some(m) = meta.metadata() {
        verify_metadata(m)?;
    }
    let Some(want) = meta.metadata().as_ref().and_then(|m| m.get(CHECKSUM_KEY)) else { return Ok(()) };
    let views = st.tensors();
    let got = checksum(views.iter().map(|(n, v)| (n.as_str(), format!("{:?}", v.dtype()), v.shape(), v.data())));
    if &got != want {
        return Err(Error::Invalid(format!(
            "its tensors do not match its checksum ({got}, recorded {want}): the file is damaged; use an earlier copy"
        )));
    }
    Ok(())
}

pub fn parse_safetensors(bytes: &[u8]) -> Result<BTreeMap<String, NamedTensor>> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::Invalid(format!("not a valid safetensors file: {e}")))?;
    verify(&st, bytes)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data: Vec<f32> = decode(&name, view.dtype(), view.data())?.into_iter().map(|v| v as f32).collect();
        out.insert(name, NamedTensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

/// Same, keeping f64 precision (for reference fixtures).
/// Shape and f64 values by name.
pub type F64Tensors = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

pub fn load_safetensors_f64(path: &Path) -> Result<F64Tensors> {
    let bytes = std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Invalid(format!("'{}' is not a valid safetensors file: {e}", path.display())))?;
    verify(&st, &bytes).map_err(|e| Error::Invalid(format!("'{}': {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = decode(&name, view.dtype(), view.data())?;
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}

/// A tensor's values from its stored element type (f16 and bf16 as PyTorch writes
/// half-precision weights; f32, f64, i64), exactly.
fn decode(name: &str, dtype: safetensors::Dtype, raw: &[u8]) -> Result<Vec<f64>> {
    use safetensors::Dtype;
    let pairs = || raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    let eights = || raw.chunks_exact(8).map(|c| <[u8; 8]>::try_from(c).expect("8 bytes"));
    Ok(match dtype {
        Dtype::F16 => pairs().map(|b| half::f16::from_bits(b).to_f64()).collect(),
        Dtype::BF16 => pairs().map(|b| half::bf16::from_bits(b).to_f64()).collect(),
        Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        Dtype::F64 => eights().map(f64::from_le_bytes).collect(),
        Dtype::I64 => eights().map(|b| i64::from_le_bytes(b) as f64).collect(),
        other => return Err(Error::Invalid(format!("tensor '{name}' has unsupported dtype {other:?}"))),
    })
}

/// A tensor to write: f32 values (stored as f32, or as f16 for a half-precision export), or
/// an i64 scalar/vector (batch-norm `num_batches_tracked`).
pub enum OutTensor {
    F32 { shape: Vec<usize>, data: Vec<f32> },
    F16 { shape: Vec<usize>, data: Vec<f32> },
    I64 { shape: Vec<usize>, data: Vec<i64> },
}

/// A safetensors file's bytes (for a download in the browser, or a file).
pub fn encode_safetensors(
    tensors: &BTreeMap<String, OutTensor>,
    metadata: std::collections::HashMap<String, String>,
) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| match t {
            OutTensor::F32 { shape, data } => {
                (name.clone(), Dtype::F32, shape.clone(), data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            OutTensor::F16 { shape, data } => {
                let bytes = data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
                (name.clone(), Dtype::F16, shape.clone(), bytes)
            }
            OutTensor::I64 { shape, data } => {
                (name.clone(), Dtype::I64, shape.clone(), data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
        })
        .collect();
    let mut metadata = metadata;
    let sum = checksum(bytes.iter().map(|(n, d, s, b)| (n.as_str(), format!("{d:?}"), s.as_slice(), b.as_slice())));
    metadata.insert(CHECKSUM_KEY.into(), sum);
    metadata.insert(METADATA_CHECKSUM_KEY.into(), metadata_checksum(&metadata));
    let views = bytes
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("cannot encode tensors: {e}")))?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Invalid(format!("cannot encode tensors: {e}")))
}

/// Writes a safetensors file atomically: a temporary file beside it, fsync, rename over the
/// target, fsync of the folder. A crash leaves either the old file or the new one, never a
/// torn one.
pub fn save_safetensors_atomic(
    path: &Path,
    tensors: &BTreeMap<String, OutTensor>,
    metadata: std::collections::HashMap<String, String>,
) -> Result<()> {
    let encoded = encode_safetensors(tensors, metadata)
        .map_err(|e| Error::Invalid(format!("cannot write '{}': {e}", path.display())))?;
    write_file_atomic(path, &encoded)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub fn write_file_atomic(path: &Path, encoded: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let io_err = |what: &str, e: std::io::Error| Error::Invalid(format!("{what} '{}': {e}", path.display()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("cannot create a temporary file for", e))?;
        f.write_all(encoded).map_err(|e| io_err("cannot write", e))?;
        f.sync_all().map_err(|e| io_err("cannot sync", e))
    })();
    if let Err(e) = written {
        // A full disk or a failed write: the target is untouched; leave no partial file.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Test hook (tests/cli.rs; test builds only): die between the write and the rename, as a
    // crash would.
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("SWAV_WGPU_TEST_CRASH_BEFORE_RENAME")
        .is_some_and(|v| path.file_name().is_some_and(|f| f.to_string_lossy() == v.to_string_lossy()))
    {
        std::process::abort();
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("cannot move the temporary file onto", e)
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether process `pid` of this machine is known to have ended (Linux: /proc; elsewhere
/// nothing is known, so nothing is taken for dead).
pub fn process_is_gone(pid: &str) -> bool {
    pid.parse::<u32>().is_ok() && Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the temporary files `write_file_atomic` left in `dir` when its process was killed
/// (`.NAME.tmp-PID` of a process that has ended). Returns their names.
pub fn remove_dead_temporaries(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dead = name.starts_with('.')
            && name.rsplit_once(".tmp-").is_some_and(|(_, pid)| process_is_gone(pid))
            && e.path().is_file();
        if dead && std::fs::remove_file(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The string metadata of a safetensors file, checked against its checksum when it has one.
pub fn read_metadata(path: &Path) -> Result<std::collections::HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::Invalid(format!("'{}' is not a valid safetensors file: {e}", path.display())))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    verify_metadata(&meta).map_err(|e| Error::Invalid(format!("'{}': {e}", path.display())))?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each stored element type comes back as the values it holds: f16 rounded once when
    /// written, f32 and i64 exactly; a bf16 tensor (as PyTorch writes) reads too.
    #[test]
    fn tensors_keep_their_element_type_through_safetensors() {
        let mut tensors = BTreeMap::new();
        tensors.insert("a".to_string(), OutTensor::F32 { shape: vec![3], data: vec![0.1, -2.5, 1e-8] });
        tensors.insert("h".to_string(), OutTensor::F16 { shape: vec![3], data: vec![0.1, -2.5, 1e-8] });
        tensors.insert("n".to_string(), OutTensor::I64 { shape: vec![], data: vec![7] });
        let bytes = encode_safetensors(&tensors, Default::default()).unwrap();
        let back = parse_safetensors(&bytes).unwrap();
        assert_eq!(back["a"].data, vec![0.1, -2.5, 1e-8]);
        // 0.1 -> the nearest f16 (0.0999755859375); 1e-8 is below f16's smallest subnormal.
        assert_eq!(back["h"].data, vec![0.099_975_586, -2.5, 0.0]);
        assert_eq!((back["n"].shape.clone(), back["n"].data.clone()), (vec![], vec![7.0]));
        let header = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(header.tensor("h").unwrap().dtype(), safetensors::Dtype::F16);
        assert_eq!(header.tensor("h").unwrap().data().len(), 6, "two bytes an element");
        let bf16: Vec<u8> = [1.5f32, -0.25].iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
        let raw = decode("b", safetensors::Dtype::BF16, &bf16).unwrap();
        assert_eq!(raw, vec![1.5, -0.25]);
        assert!(decode("u", safetensors::Dtype::U8, &[1, 2]).unwrap_err().to_string().contains("'u'"));
    }
}
